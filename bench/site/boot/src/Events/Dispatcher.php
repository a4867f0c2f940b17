<?php

declare(strict_types=1);

namespace Bench\Boot\Events;

use Bench\Boot\Contracts\EventDispatcherInterface;
use Bench\Boot\Contracts\ListenerInterface;

/**
 * Calls the listeners of an event by priority until one stops propagation.
 */
final class Dispatcher implements EventDispatcherInterface
{
    /** @var array<string, array<int, list<ListenerInterface|callable>>> */
    private array $listeners = [];

    /** @var array<string, list<ListenerInterface|callable>> */
    private array $sorted = [];

    public function listen(string $event, ListenerInterface|callable $listener, int $priority = 0): void
    {
        $this->listeners[$event][$priority][] = $listener;
        unset($this->sorted[$event]);
    }

    public function hasListeners(string $event): bool
    {
        return !empty($this->listeners[$event]);
    }

    public function dispatch(object $event): object
    {
        foreach ($this->listenersFor($event::class) as $listener) {
            if ($event instanceof AbstractEvent && $event->isPropagationStopped()) {
                break;
            }
            $listener instanceof ListenerInterface ? $listener->handle($event) : $listener($event);
        }
        return $event;
    }

    /** @return list<ListenerInterface|callable> */
    private function listenersFor(string $event): array
    {
        if (!isset($this->sorted[$event])) {
            $byPriority = $this->listeners[$event] ?? [];
            krsort($byPriority);
            $this->sorted[$event] = $byPriority ? array_merge(...array_values($byPriority)) : [];
        }
        return $this->sorted[$event];
    }
}
