//! Name-value pair encoding (FastCGI 1.0, section 3.4).
