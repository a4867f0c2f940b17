<?php
$l = posix_getrlimit();
echo json_encode(['uid' => posix_getuid(), 'gid' => posix_getgid(), 'files' => $l['soft openfiles'], 'core' => $l['soft core']]);
