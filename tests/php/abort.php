<?php
// Streams until the client leaves; says in a file what PHP noticed.
if (isset($_GET['ignore'])) {
    ignore_user_abort(true);
}
$marker = __DIR__ . '/abort-' . preg_replace('/[^a-z0-9]/', '', $_GET['tag'] ?? 'x');
register_shutdown_function(function () use ($marker) {
    file_put_contents($marker, "shutdown status=" . connection_status() . "\n", FILE_APPEND);
});
for ($i = 0; $i < 400; $i++) {
    echo str_repeat('x', 8192), "\n";
    flush();
    if (connection_aborted()) {
        file_put_contents($marker, "noticed at $i\n", FILE_APPEND);
        break;
    }
    usleep(10000);
}
