<?php
// Symfony Cache (Debian php-symfony-cache) on the store through phpredis: RedisAdapter
// (?part=cache) and RedisTagAwareAdapter (?part=tags).
require __DIR__ . '/store.php';
require 'Symfony/Component/Cache/autoload.php';

use Symfony\Component\Cache\Adapter\RedisAdapter;
use Symfony\Component\Cache\Adapter\RedisTagAwareAdapter;
use Symfony\Contracts\Cache\ItemInterface;

$redis = RedisAdapter::createConnection(isola_symfony_dsn());
$out = [];
$calls = 0;
$compute = function (int $ttl, array $tags = []) use (&$calls) {
    return function (ItemInterface $item) use (&$calls, $ttl, $tags) {
        $calls++;
        $item->expiresAfter($ttl);
        if ($tags) {
            $item->tag($tags);
        }
        return ['answer' => 42, 'computed' => $calls];
    };
};

if (($_GET['part'] ?? 'cache') === 'cache') {
    $cache = new RedisAdapter($redis, 'app');
    $cache->clear();
    $out['first'] = $cache->get('answer', $compute(60));
    $out['second'] = $cache->get('answer', $compute(60));
    $out['hit'] = $cache->getItem('answer')->isHit();
    $out['calls_after_hit'] = $calls;
    $out['delete'] = $cache->delete('answer');
    $out['hit_after_delete'] = $cache->getItem('answer')->isHit();
    $out['recomputed'] = $cache->get('answer', $compute(60));

    $item = $cache->getItem('many.a')->set('A');
    $cache->saveDeferred($item);
    $cache->saveDeferred($cache->getItem('many.b')->set('B'));
    $out['commit'] = $cache->commit();
    $out['many'] = array_map(fn ($i) => $i->get(), iterator_to_array($cache->getItems(['many.a', 'many.b', 'many.c'])));
    $out['has'] = [$cache->hasItem('many.a'), $cache->hasItem('many.c')];

    $cache->get('short', $compute(1));
    $out['short_hit'] = $cache->getItem('short')->isHit();
    usleep(1300 * 1000);
    $out['short_hit_later'] = $cache->getItem('short')->isHit();

    // clear() only removes this namespace: another adapter's items stay.
    $other = new RedisAdapter($redis, 'other');
    $other->get('kept', fn () => 'yes');
    $out['clear'] = $cache->clear();
    $out['after_clear'] = [$cache->hasItem('many.a'), $other->hasItem('kept')];
    $other->clear();
} else {
    $cache = new RedisTagAwareAdapter($redis, 'tagged');
    $cache->clear();
    $out['a'] = $cache->get('a', $compute(60, ['users']));
    $out['b'] = $cache->get('b', $compute(60, ['posts']));
    $out['a_again'] = $cache->get('a', $compute(60, ['users']));
    $out['invalidate'] = $cache->invalidateTags(['users']);
    $out['a_hit'] = $cache->getItem('a')->isHit();
    $out['b_hit'] = $cache->getItem('b')->isHit();
    $out['a_recomputed'] = $cache->get('a', $compute(60, ['users']));
    $out['calls'] = $calls;
    $out['clear'] = $cache->clear();
}
isola_json($out);
