<?php

declare(strict_types=1);

namespace Bench\Boot\Providers;

use Bench\Boot\Contracts\ContainerInterface;
use Bench\Boot\Support\AbstractServiceProvider;
use Bench\Boot\Cache\ArrayCache;
use Bench\Boot\Container\Reference;

/**
 * The cache store.
 */
final class CacheServiceProvider extends AbstractServiceProvider
{
    protected function definitions(): array
    {
        return [
            'cache' => fn (ContainerInterface $c) => new ArrayCache($c->get('config')->get('cache.prefix', 'app_')),
        ];
    }

    public function boot(ContainerInterface $container): void
    {
        $cache = $container->get('cache');
        $cache->remember('boot.count', 60, fn () => 0);
        Reference::optional('logger')->resolve($container)?->debug('cache ready ({class})', ['class' => $cache::class]);
        parent::boot($container);
    }
}
