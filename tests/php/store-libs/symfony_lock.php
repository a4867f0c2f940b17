<?php
// Symfony Lock (Debian php-symfony-lock) with its RedisStore on the store through phpredis.
// ?part=basic: acquire, conflict, release, refresh and expiry; ?part=count: one step of a
// counter guarded by a blocking lock (requests run it concurrently).
require __DIR__ . '/store.php';
require 'Symfony/Component/Lock/autoload.php';

use Symfony\Component\Lock\LockFactory;
use Symfony\Component\Lock\Store\RedisStore;

$redis = isola_phpredis();
$factory = new LockFactory(new RedisStore($redis));

if (($_GET['part'] ?? 'basic') === 'count') {
    $lock = $factory->createLock('sf-counter', 10);
    $lock->acquire(true);
    $n = (int) $redis->get('sf-counter:value');
    usleep(2000);
    $redis->set('sf-counter:value', $n + 1);
    $lock->release();
    isola_json(['n' => $n + 1]);
    exit;
}

$out = [];
$first = $factory->createLock('sf-resource', 30);
$second = $factory->createLock('sf-resource', 30);
$out['first_acquire'] = $first->acquire();
$out['second_acquire'] = $second->acquire();
$out['first_acquired'] = $first->isAcquired();
$out['second_acquired'] = $second->isAcquired();
$first->release();
$out['first_after_release'] = $first->isAcquired();
$out['second_after_release'] = $second->acquire();
$second->release();

// Refresh pushes the expiry out; without it the lock lapses and someone else may take it.
$short = $factory->createLock('sf-ttl', 0.5);
$out['short_acquire'] = $short->acquire();
$left = $short->getRemainingLifetime();
$out['short_ttl_ok'] = $left > 0 && $left <= 0.5;
$short->refresh(5);
$left = $short->getRemainingLifetime();
$out['refreshed_ttl_ok'] = $left > 4 && $left <= 5;
usleep(700 * 1000);
$out['refreshed_still_held'] = $short->isAcquired();
$short->refresh(0.3);
usleep(500 * 1000);
$out['expired'] = $short->isExpired();
$out['expired_held'] = $short->isAcquired();
$other = $factory->createLock('sf-ttl', 5);
$out['other_after_expiry'] = $other->acquire();
$other->release();
isola_json($out);
