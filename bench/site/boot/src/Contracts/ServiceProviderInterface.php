<?php

declare(strict_types=1);

namespace Bench\Boot\Contracts;

/**
 * Registers services, then boots them once every provider is registered.
 */
interface ServiceProviderInterface
{
    public function register(ContainerInterface $container): void;

    public function boot(ContainerInterface $container): void;

    /** @return list<string> ids this provider defines */
    public function provides(): array;
}
