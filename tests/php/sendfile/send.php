<?php
// Names a file for Isola to send: ?h=accel (X-Accel-Redirect), ?h=sendfile (X-Sendfile) or
// ?h=lighttpd; ?f= the value. Its own body and validators must never reach the client.
$h = ['accel' => 'X-Accel-Redirect', 'sendfile' => 'X-Sendfile', 'lighttpd' => 'X-LIGHTTPD-send-file'][$_GET['h'] ?? 'accel'];
if (isset($_GET['type'])) {
    header('Content-Type: ' . $_GET['type']);
}
header('Content-Disposition: attachment; filename="report.pdf"');
header('Set-Cookie: downloaded=1');
if (!isset($_GET['nocache'])) {
    header('Cache-Control: private, max-age=60');
}
header('ETag: "from-php"');
header('Last-Modified: Thu, 01 Jan 1970 00:00:00 GMT');
header('Content-Length: 8');
header($h . ': ' . $_GET['f']);
echo "PHP BODY";
if (isset($_GET['linger'])) {
    // The head is out and the script goes on: its later output is discarded too.
    while (ob_get_level()) { ob_end_flush(); }
    flush();
    usleep(800000);
    echo "LATE BODY";
}
