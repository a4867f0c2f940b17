//! `isola.toml` and command-line settings as one validated, typed [`Config`].
