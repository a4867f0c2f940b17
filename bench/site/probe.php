<?php
// Configuration probe: proves each stack runs the same PHP with opcache active.
$status = function_exists('opcache_get_status') ? opcache_get_status(false) : false;
$ini = ini_get_all(null, false);
// SAPI-specific or per-stack values are left out of the fingerprint of the effective settings.
foreach (array_keys($ini) as $k) {
    if (str_starts_with($k, 'cgi.') || str_starts_with($k, 'fastcgi.') || $k === 'error_log'
        || $k === 'session.save_path' || $k === 'user_ini.filename' || str_starts_with($k, 'opcache.lockfile')) {
        unset($ini[$k]);
    }
}
$ext = get_loaded_extensions();
sort($ext);
header('Content-Type: application/json');
echo json_encode([
    'sapi' => PHP_SAPI,
    'version' => PHP_VERSION,
    'opcache_enabled' => is_array($status) ? (bool) $status['opcache_enabled'] : false,
    'jit' => is_array($status) && isset($status['jit']) ? (bool) $status['jit']['on'] : false,
    'ini' => $ini,
    'extensions' => $ext,
    'pid' => getmypid(),
    'user' => function_exists('posix_geteuid') ? (posix_getpwuid(posix_geteuid())['name'] ?? '') : '',
]), "\n";
