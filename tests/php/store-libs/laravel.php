<?php
// Laravel's cache, locks and Redis queue (Debian php-laravel-framework) without an
// application skeleton: a container, a RedisManager on phpredis, and the classes a Laravel
// app would get from its service providers.
// ?part=cache | lock | count (one step of a counter under a blocking lock) | queue
require __DIR__ . '/store.php';
require 'Illuminate/autoload.php';

use Illuminate\Cache\RedisStore;
use Illuminate\Cache\Repository;
use Illuminate\Container\Container;
use Illuminate\Queue\RedisQueue;
use Illuminate\Redis\RedisManager;

$app = new Container();
Container::setInstance($app);
// As in Laravel's config/database.php, the cache gets a database of its own: flushing the
// cache (FLUSHDB) must not take Isola's queues and the app's other keys with it.
$cacheDb = isola_laravel_connection();
$cacheDb['database'] += 1;
$redis = new RedisManager($app, 'phpredis', [
    'options' => ['prefix' => 'lv:'],
    'default' => isola_laravel_connection(),
    'cache' => $cacheDb,
]);
$cache = new Repository(new RedisStore($redis, 'cache', 'cache'));
$conn = $redis->connection();
$out = [];

switch ($_GET['part'] ?? 'cache') {
    case 'cache':
        $conn->set('keep', 1);
        $out['flush'] = $cache->flush();
        $out['other_db_kept'] = $conn->exists('keep');
        $out['put'] = $cache->put('user:1', ['name' => 'Ada'], 60);
        $out['get'] = $cache->get('user:1');
        $out['missing'] = $cache->get('user:2', 'default');
        $calls = 0;
        $fn = function () use (&$calls) {
            return ++$calls;
        };
        $out['remember'] = [$cache->remember('r', 60, $fn), $cache->remember('r', 60, $fn), $calls];
        $out['add'] = [$cache->add('once', 1, 60), $cache->add('once', 2, 60), $cache->get('once')];
        $out['increment'] = [$cache->increment('hits'), $cache->increment('hits', 5), $cache->decrement('hits')];
        $out['many'] = [$cache->putMany(['m1' => 'a', 'm2' => 'b'], 60), $cache->many(['m1', 'm2', 'm3'])];
        $out['forever'] = [$cache->forever('f', 'x'), $redis->connection('cache')->ttl('cache:f')];
        $out['pull'] = [$cache->pull('f'), $cache->has('f')];
        $out['forget'] = [$cache->forget('user:1'), $cache->has('user:1')];
        $cache->tags(['people'])->put('john', 'J', 60);
        $cache->tags(['people', 'admins'])->put('anne', 'A', 60);
        $out['tags'] = [$cache->tags(['people'])->get('john'), $cache->tags(['people', 'admins'])->get('anne')];
        $cache->tags(['people'])->flush();
        $out['tags_flushed'] = [$cache->tags(['people'])->get('john'), $cache->tags(['people', 'admins'])->get('anne')];
        $cache->put('short', 'v', 1);
        $out['short'] = $cache->get('short');
        usleep(1300 * 1000);
        $out['short_later'] = $cache->get('short');
        break;

    case 'lock':
        $a = $cache->lock('lv-resource', 10);
        $b = $cache->lock('lv-resource', 10);
        $out['a_get'] = $a->get();
        $out['b_get'] = $b->get();
        $out['b_release'] = $b->release();
        $out['a_release'] = $a->release();
        $out['b_block'] = $b->block(2);
        $restored = $cache->restoreLock('lv-resource', $b->owner());
        $out['restored_release'] = $restored->release();
        $out['callback'] = $cache->lock('lv-resource', 10)->get(fn () => 'ran');
        $out['free_after_callback'] = $cache->lock('lv-resource', 10)->get();
        $cache->lock('lv-resource')->forceRelease();
        $short = $cache->lock('lv-short', 1);
        $out['short_get'] = $short->get();
        usleep(1200 * 1000);
        $out['after_expiry'] = $cache->lock('lv-short', 1)->get();
        break;

    case 'count':
        $n = $cache->lock('lv-counter', 10)->block(30, function () use ($conn) {
            $n = (int) $conn->get('lv-counter:value');
            usleep(2000);
            $conn->set('lv-counter:value', $n + 1);
            return $n + 1;
        });
        $out['n'] = $n;
        break;

    case 'queue':
        $queue = new RedisQueue($redis, 'jobs', 'default', 60);
        $queue->setContainer($app);
        $queue->setConnectionName('redis');
        $queue->clear('jobs');
        $ids = [];
        for ($i = 1; $i <= 5; $i++) {
            $ids[] = $queue->push('SendMail', ['i' => $i]);
        }
        $out['pushed'] = count(array_unique($ids));
        $out['size'] = $queue->size();
        $order = [];
        while ($job = $queue->pop()) {
            $order[] = $job->payload()['data']['i'];
            $job->delete();
        }
        $out['popped'] = $order;
        $out['size_after'] = $queue->size();

        $queue->push('SendMail', ['i' => 6]);
        $job = $queue->pop();
        $out['attempts'] = $job->attempts();
        $job->release(1);
        $out['size_released'] = $queue->size();
        $out['pop_while_delayed'] = $queue->pop() === null;
        $queue->later(1, 'SendMail', ['i' => 7]);
        usleep(1100 * 1000);
        $again = [];
        while ($job = $queue->pop()) {
            $again[] = [$job->payload()['data']['i'], $job->attempts()];
            $job->delete();
        }
        sort($again);
        $out['after_delay'] = $again;
        $out['size_end'] = $queue->size();
        break;
}
isola_json($out);
