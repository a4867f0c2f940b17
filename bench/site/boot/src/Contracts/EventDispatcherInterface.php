<?php

declare(strict_types=1);

namespace Bench\Boot\Contracts;

/**
 * Dispatches events to the listeners registered for their name.
 */
interface EventDispatcherInterface
{
    public function listen(string $event, ListenerInterface|callable $listener, int $priority = 0): void;

    public function dispatch(object $event): object;

    public function hasListeners(string $event): bool;
}
