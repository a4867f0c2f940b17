<?php
// php-fpm's fastcgi_finish_request(): the client has its response, the script runs on.
echo "sent to the client";
$ok = fastcgi_finish_request();
echo "never seen";
usleep((int)($_GET['ms'] ?? 800) * 1000);
file_put_contents(__DIR__ . '/finished-after', $ok ? "ran on\n" : "false\n");
