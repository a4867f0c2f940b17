<?php

declare(strict_types=1);

namespace Bench\Boot\Events;

use Bench\Boot\Contracts\ContainerInterface;

/**
 * Dispatched once every service provider is booted.
 */
final class KernelBooted extends AbstractEvent
{
    public function __construct(public readonly ContainerInterface $container, public readonly int $providers)
    {
        parent::__construct();
    }

    public function services(): int
    {
        return count($this->container->ids());
    }
}
