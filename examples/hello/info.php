<?php
header('Content-Type: text/plain; charset=utf-8');
$keys = ['REQUEST_METHOD', 'REQUEST_URI', 'SCRIPT_NAME', 'SCRIPT_FILENAME', 'PATH_INFO',
         'QUERY_STRING', 'DOCUMENT_ROOT', 'SERVER_PROTOCOL', 'REMOTE_ADDR', 'ISOLA_REQUEST_ID'];
foreach ($keys as $k) {
    printf("%-16s %s\n", $k, $_SERVER[$k] ?? '');
}
printf("%-16s %s\n", 'PHP_SAPI', PHP_SAPI);
printf("%-16s %d\n", 'worker pid', getmypid());
