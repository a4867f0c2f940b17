<?php
// The naive read-modify-write, made safe by a lock: SET key token NX PX takes it only if
// nobody holds it, and expires it if this worker dies while holding it.
require __DIR__ . '/../connect.php';
$r = store();
admin($r, 'pageviews:lock');

$token = bin2hex(random_bytes(16));
$deadline = microtime(true) + 10;
while (!$r->set('pageviews:lock:mutex', $token, ['nx', 'px' => 5000])) {
    if (microtime(true) > $deadline) {
        http_response_code(503);
        exit("lock busy\n");
    }
    // Short random waits keep waiters from retrying in lockstep.
    usleep(random_int(500, 2000));
}
try {
    $views = (int) $r->get('pageviews:lock');
    $r->set('pageviews:lock', $views + 1);
} finally {
    // Delete the lock only if it is still ours: had it expired and been taken by another
    // request, a plain DEL would free that request's lock. The compare and the delete must
    // be one step, hence EVAL (without scripting, WATCH + GET + MULTI/DEL/EXEC does the same).
    $r->eval(
        'if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) end return 0',
        ['pageviews:lock:mutex', $token],
        1
    );
}
echo $views + 1, "\n";
