<?php

declare(strict_types=1);

namespace Bench\Boot\Providers;

use Bench\Boot\Contracts\ContainerInterface;
use Bench\Boot\Support\AbstractServiceProvider;
use Bench\Boot\Log\MemoryLogger;

/**
 * The logger.
 */
final class LogServiceProvider extends AbstractServiceProvider
{
    protected function definitions(): array
    {
        return [
            'logger' => fn (ContainerInterface $c) => new MemoryLogger($c->get('config')->get('log.level', 'info')),
        ];
    }

    public function register(ContainerInterface $container): void
    {
        parent::register($container);
        $container->alias(\Bench\Boot\Contracts\LoggerInterface::class, 'logger');
    }
}
