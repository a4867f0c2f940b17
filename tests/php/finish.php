<?php
// What apps do without fastcgi_finish_request(): send a complete response with its own
// Content-Length, flush it, and keep working. The client must get it at once.
while (ob_get_level()) { ob_end_flush(); }
$body = "done early";
header('Content-Length: ' . strlen($body));
header('Connection: close');
echo $body;
flush();
usleep((int)($_GET['ms'] ?? 1500) * 1000);
