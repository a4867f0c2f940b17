<?php
// Writes one line to PHP's error log (the SAPI's: FastCGI STDERR of this request).
error_log('errlog-marker ' . ($_GET['m'] ?? ''));
echo "logged";
