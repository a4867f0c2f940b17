<?php

declare(strict_types=1);

namespace Bench\Boot\Providers;

use Bench\Boot\Contracts\ContainerInterface;
use Bench\Boot\Support\AbstractServiceProvider;
use Bench\Boot\Config\Loader;
use Bench\Boot\Config\Repository;

/**
 * Loads the configuration arrays.
 */
final class ConfigServiceProvider extends AbstractServiceProvider
{
    public function __construct(private readonly string $environment = 'production')
    {
    }

    protected function definitions(): array
    {
        $env = $this->environment;
        return [
            'config' => fn () => new Repository((new Loader($env))->load()),
        ];
    }

    public function boot(ContainerInterface $container): void
    {
        date_default_timezone_set($container->get('config')->get('app.timezone', 'UTC'));
        parent::boot($container);
    }
}
