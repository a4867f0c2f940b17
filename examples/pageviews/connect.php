<?php
// Isola tells every worker where the store is: ISOLA_STORE is unix:///path/to/socket (the
// embedded store) or redis://[:password@]host[:port][/db] (with [store] url set).
function store(): Redis
{
    $url = getenv('ISOLA_STORE') ?: 'redis://127.0.0.1:6379';
    $r = new Redis();
    if (str_starts_with($url, 'unix://')) {
        $r->connect(substr($url, strlen('unix://')));
    } else {
        $u = parse_url($url);
        $r->connect($u['host'], $u['port'] ?? 6379);
        if (isset($u['pass'])) {
            $r->auth(rawurldecode($u['pass']));
        }
        if (($db = (int) trim($u['path'] ?? '', '/')) !== 0) {
            $r->select($db);
        }
    }
    if ($password = getenv('ISOLA_STORE_PASSWORD')) {
        $r->auth($password);
    }
    return $r;
}

// ?reset=1 zeroes the counter, ?read=1 prints it; either ends the request.
function admin(Redis $r, string $key): void
{
    header('Content-Type: text/plain');
    if (isset($_GET['reset'])) {
        $r->set($key, 0);
        exit("0\n");
    }
    if (isset($_GET['read'])) {
        exit((int) $r->get($key) . "\n");
    }
}
