<?php
// SCAN, HSCAN, SSCAN and ZSCAN iterated to the end the way applications do (Laravel's and
// Symfony's cache clearing), with phpredis and with Predis's iterators, while keys and
// members are added and removed between calls: everything present throughout must come
// back, and phpredis must see cursors that fit its signed long and end on 0.
require __DIR__ . '/store.php';

const N = 40;
const M = 200; // more than Redis's listpack limit (128), so Redis pages these too

function reset_data(Redis $r): void
{
    $old = [];
    $it = null;
    $r->setOption(Redis::OPT_SCAN, Redis::SCAN_RETRY);
    while (($keys = $r->scan($it, 'scan:*', 100)) !== false) {
        array_push($old, ...$keys);
    }
    if ($old) {
        $r->del($old);
    }
    for ($i = 0; $i < N; $i++) {
        $r->set("scan:stay$i", 'v');
        $r->set("scan:gone$i", 'v');
    }
    for ($i = 0; $i < M; $i++) {
        $r->hSet('scan:h', "stay$i", 'v');
        $r->hSet('scan:h', "gone$i", 'v');
        $r->sAdd('scan:s', "stay$i", "gone$i");
        $r->zAdd('scan:z', $i, "stay$i", $i, "gone$i");
    }
}

// Between two calls: new elements, and some of the `gone` ones removed.
function churn(Redis $r, int $round): void
{
    if ($round >= 20) {
        return;
    }
    for ($j = 0; $j < 5; $j++) {
        $n = $round * 5 + $j;
        $r->set("scan:new$n", 'v');
        $r->hSet('scan:h', "new$n", 'v');
        $r->sAdd('scan:s', "new$n");
        $r->zAdd('scan:z', $n, "new$n");
    }
    $g = $round % N;
    $r->del("scan:gone$g");
    $r->hDel('scan:h', "gone$g");
    $r->sRem('scan:s', "gone$g");
    $r->zRem('scan:z', "gone$g");
}

function stay_count(array $names, int $of): int
{
    $want = [];
    for ($i = 0; $i < $of; $i++) {
        $want["stay$i"] = true;
    }
    $seen = [];
    foreach ($names as $n) {
        $n = (string) $n;
        if (str_starts_with($n, 'scan:')) {
            $n = substr($n, 5);
        }
        if (isset($want[$n])) {
            $seen[$n] = true;
        }
    }
    return count($seen);
}

$r = isola_phpredis();
$out = [];

// phpredis, default options (SCAN_NORETRY: pages may be empty until the iterator is 0).
$r->setOption(Redis::OPT_SCAN, Redis::SCAN_NORETRY);
foreach (['scan', 'hscan', 'sscan', 'zscan'] as $cmd) {
    reset_data($r);
    $r->setOption(Redis::OPT_SCAN, Redis::SCAN_NORETRY);
    $it = null;
    $names = [];
    $calls = 0;
    $max = 0;
    while (true) {
        $page = match ($cmd) {
            'scan' => $r->scan($it, 'scan:*', 5),
            'hscan' => $r->hScan('scan:h', $it, null, 5),
            'sscan' => $r->sScan('scan:s', $it, null, 5),
            'zscan' => $r->zScan('scan:z', $it, null, 5),
        };
        if ($page === false) {
            break;
        }
        $names = array_merge($names, in_array($cmd, ['hscan', 'zscan']) ? array_keys($page) : $page);
        $max = max($max, $it);
        churn($r, $calls++);
        if ($it === 0 || $calls > 100000) {
            break;
        }
    }
    $out["phpredis_$cmd"] = [
        'found' => stay_count($names, $cmd === 'scan' ? N : M),
        'end' => $it,
        'cursor_fits' => $max < PHP_INT_MAX,
    ];
}

// Predis's iterators, when Predis is installed.
if (stream_resolve_include_path('Predis/Autoloader.php') !== false) {
    require_once 'Predis/Autoloader.php';
    Predis\Autoloader::register();
    $c = new Predis\Client(getenv('ISOLA_STORE'));
    $iters = [
        'scan' => fn () => new Predis\Collection\Iterator\Keyspace($c, 'scan:*', 5),
        'hscan' => fn () => new Predis\Collection\Iterator\HashKey($c, 'scan:h', null, 5),
        'sscan' => fn () => new Predis\Collection\Iterator\SetKey($c, 'scan:s', null, 5),
        'zscan' => fn () => new Predis\Collection\Iterator\SortedSetKey($c, 'scan:z', null, 5),
    ];
    foreach ($iters as $cmd => $make) {
        reset_data($r);
        $names = [];
        $i = 0;
        foreach ($make() as $k => $v) {
            $names[] = in_array($cmd, ['hscan', 'zscan']) ? $k : $v;
            if ($i++ % 5 === 4) {
                churn($r, intdiv($i, 5));
            }
        }
        $out["predis_$cmd"] = ['found' => stay_count($names, $cmd === 'scan' ? N : M)];
    }
}
isola_json($out);
