<?php
// ?bare=1: a Location with status 200, so php-cgi sends no Status line: the server must make it
// a 302 (RFC 3875 6.2.3 client redirect), as nginx does.
if (isset($_GET['bare'])) { header('Location: /bare-target'); http_response_code(200); echo 'moved'; exit; }
if (isset($_GET['permanent'])) { header('Location: /target', true, 301); exit; }
header('Location: /elsewhere?x=1');
