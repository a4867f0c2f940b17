<?php
// ISOLA_STORE is `unix:///path` (embedded store, or a Redis on a socket) or
// `redis://[:password@]host[:port][/db]`; each library wants it in its own shape.

function isola_store(): array
{
    $url = getenv('ISOLA_STORE');
    if ($url === false || $url === '') {
        throw new RuntimeException('ISOLA_STORE is not set');
    }
    $password = getenv('ISOLA_STORE_PASSWORD') ?: null;
    if (str_starts_with($url, 'unix://')) {
        return ['scheme' => 'unix', 'path' => substr($url, strlen('unix://')), 'port' => 0,
                'password' => $password, 'database' => 0];
    }
    $u = parse_url($url);
    return ['scheme' => 'tcp', 'host' => $u['host'], 'port' => $u['port'] ?? 6379,
            'password' => isset($u['pass']) ? rawurldecode($u['pass']) : $password,
            'database' => (int) trim($u['path'] ?? '', '/')];
}

function isola_phpredis(): Redis
{
    $s = isola_store();
    $r = new Redis();
    $s['scheme'] === 'unix' ? $r->connect($s['path']) : $r->connect($s['host'], $s['port']);
    if ($s['password'] !== null) {
        $r->auth($s['password']);
    }
    if ($s['database'] !== 0) {
        $r->select($s['database']);
    }
    return $r;
}

// Symfony's DSN form: redis:///path/to/socket or redis://[:pass@]host:port/db.
function isola_symfony_dsn(): string
{
    $url = getenv('ISOLA_STORE');
    return str_starts_with($url, 'unix://') ? 'redis://' . substr($url, strlen('unix://')) : $url;
}

// Laravel's connection array (config/database.php 'redis' => ['default' => ...]).
function isola_laravel_connection(): array
{
    $s = isola_store();
    return $s['scheme'] === 'unix'
        ? ['host' => $s['path'], 'port' => 0, 'password' => $s['password'], 'database' => 0]
        : ['host' => $s['host'], 'port' => $s['port'], 'password' => $s['password'],
           'database' => $s['database']];
}

function isola_json($v): void
{
    header('Content-Type: application/json');
    echo json_encode($v, JSON_UNESCAPED_SLASHES);
}
