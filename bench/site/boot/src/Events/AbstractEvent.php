<?php

declare(strict_types=1);

namespace Bench\Boot\Events;

/**
 * Base event: a timestamp and propagation control.
 */
abstract class AbstractEvent
{
    private bool $stopped = false;

    public readonly float $time;

    public function __construct()
    {
        $this->time = microtime(true);
    }

    public function stopPropagation(): void
    {
        $this->stopped = true;
    }

    public function isPropagationStopped(): bool
    {
        return $this->stopped;
    }

    public function name(): string
    {
        $parts = explode('\\', static::class);
        return strtolower(preg_replace('/(?<!^)[A-Z]/', '.$0', end($parts)));
    }
}
