<?php
// Dumps what PHP sees, as JSON.
header('Content-Type: application/json');
$files = [];
foreach ($_FILES as $k => $f) {
    $files[$k] = ['name' => $f['name'], 'size' => $f['size'], 'error' => $f['error'],
                  'sha256' => $f['error'] === 0 ? hash_file('sha256', $f['tmp_name']) : null];
}
$input = file_get_contents('php://input');
echo json_encode([
    'server' => $_SERVER, 'get' => $_GET, 'post' => $_POST, 'cookie' => $_COOKIE, 'files' => $files,
    'input_len' => strlen($input), 'input_sha256' => hash('sha256', $input), 'pid' => getmypid(),
], JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE);
