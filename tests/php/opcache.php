<?php
header('Content-Type: application/json');
$s = opcache_get_status(true);
echo json_encode([
    'pid' => getmypid(),
    'enabled' => $s['opcache_enabled'] ?? false,
    'scripts' => array_keys($s['scripts'] ?? []),
]);
