<?php
// Predis (Debian php-nrk-predis): the usual data types, a pipeline, MULTI/EXEC with and
// without WATCH, and expiry. Predis takes ISOLA_STORE as it is (unix:// or redis://).
require __DIR__ . '/store.php';
require 'Predis/Autoloader.php';
Predis\Autoloader::register();

$c = new Predis\Client(getenv('ISOLA_STORE'));
$c->del(['p:s', 'p:n', 'p:h', 'p:l', 'p:m1', 'p:m2', 'p:t', 'p:w', 'p:ttl', 'p:px']);

// Status replies are objects in Predis; their text is what Redis sent.
$plain = function ($v) use (&$plain) {
    if (is_array($v)) {
        return array_map($plain, $v);
    }
    return is_object($v) ? (string) $v : $v;
};

$out = [];
if (($_GET['part'] ?? '') === 'legacy') {
    // Deprecated since Redis 6.2 but still sent by older code.
    $c->set('p:s', 'old');
    isola_json(['getset' => [$c->getset('p:s', 'new'), $c->get('p:s')]]);
    exit;
}
$out['strings'] = $plain([
    $c->set('p:s', 'hello'),
    $c->append('p:s', ' world'),
    $c->get('p:s'),
    $c->strlen('p:s'),
    $c->setnx('p:s', 'x'),
    $c->incrby('p:n', 5),
    $c->incr('p:n'),
    $c->decr('p:n'),
    $c->mset(['p:m1' => 'a', 'p:m2' => 'b']),
    $c->mget(['p:m1', 'p:m2', 'p:missing']),
    $c->get('p:missing'),
]);

$out['hashes'] = $plain([
    $c->hset('p:h', 'name', 'isola'),
    $c->hmset('p:h', ['lang' => 'rust', 'stars' => '1']),
    $c->hincrby('p:h', 'stars', 41),
    $c->hget('p:h', 'name'),
    $c->hexists('p:h', 'lang'),
    $c->hdel('p:h', ['lang']),
    $c->hlen('p:h'),
    (function ($h) { ksort($h); return $h; })($c->hgetall('p:h')),
    $c->hmget('p:h', ['name', 'nope']),
]);

$out['lists'] = $plain([
    $c->rpush('p:l', ['b', 'c']),
    $c->lpush('p:l', ['a']),
    $c->rpush('p:l', ['d']),
    $c->lrange('p:l', 0, -1),
    $c->llen('p:l'),
    $c->lindex('p:l', -1),
    $c->lpop('p:l'),
    $c->rpop('p:l'),
    $c->linsert('p:l', 'BEFORE', 'c', 'x'),
    $c->lrem('p:l', 0, 'x'),
    $c->lrange('p:l', 0, -1),
]);

$out['pipeline'] = $plain($c->pipeline(function ($p) {
    $p->set('p:t', 1);
    $p->incr('p:t');
    $p->get('p:t');
    $p->del(['p:t']);
    $p->exists('p:t');
}));

$out['transaction'] = $plain($c->transaction(function ($tx) {
    $tx->set('p:t', 10);
    $tx->incrby('p:t', 5);
    $tx->get('p:t');
}));

// WATCH: a write by another client between WATCH and EXEC aborts the transaction.
$c->set('p:w', 1);
$other = new Predis\Client(getenv('ISOLA_STORE'));
try {
    $c->transaction(['watch' => 'p:w', 'cas' => true, 'retry' => 0], function ($tx) use ($other) {
        $v = $tx->get('p:w');
        $other->set('p:w', 100);
        $tx->multi();
        $tx->set('p:w', $v + 1);
    });
    $out['watch'] = 'committed';
} catch (Predis\Transaction\AbortedMultiExecException $e) {
    $out['watch'] = 'aborted';
}
$out['watch_value'] = $c->get('p:w');
// The same with nobody interfering commits.
$out['watch_retry'] = $plain($c->transaction(['watch' => 'p:w', 'cas' => true, 'retry' => 3], function ($tx) {
    $v = $tx->get('p:w');
    $tx->multi();
    $tx->set('p:w', $v + 1);
}));
$out['watch_final'] = $c->get('p:w');

$c->setex('p:ttl', 100, 'v');
$ttl = $c->ttl('p:ttl');
$c->psetex('p:px', 80, 'v');
$pttl = $c->pttl('p:px');
$out['ttl'] = [
    $ttl > 95 && $ttl <= 100,
    $pttl > 0 && $pttl <= 80,
    $c->exists('p:px'),
    $c->persist('p:ttl'),
    $c->ttl('p:ttl'),
    $c->ttl('p:missing'),
    $c->expire('p:ttl', 1),
];
usleep(150 * 1000);
$out['ttl'][] = $c->exists('p:px');
$out['ttl'][] = $c->get('p:px');

$out['types'] = [$c->type('p:s')->getPayload(), $c->type('p:h')->getPayload(), $c->type('p:l')->getPayload()];
isola_json($out);
