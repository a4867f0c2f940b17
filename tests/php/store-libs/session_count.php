<?php
// One step of a read-modify-write on a shared session. The pause widens the window in which
// a second request of the same session would read the old value if sessions were not locked.
require __DIR__ . '/store.php';
if (!session_start()) {
    http_response_code(500);
    exit('session_start failed');
}
$n = ($_SESSION['n'] ?? 0);
usleep((int) ($_GET['ms'] ?? 50) * 1000);
$_SESSION['n'] = $n + 1;
isola_json(['n' => $_SESSION['n'], 'pid' => getmypid()]);
