<?php

declare(strict_types=1);

namespace Bench\Boot\Listeners;

use Bench\Boot\Contracts\ListenerInterface;
use Bench\Boot\Events\RequestReceived;
use Bench\Boot\Events\ResponseReady;

/**
 * Counts events and measures the time from request to response.
 */
final class MetricsListener implements ListenerInterface
{
    /** @var array<string, int> */
    private array $counters = [];

    private float $started = 0.0;

    public static function subscribedTo(): array
    {
        return [RequestReceived::class, ResponseReady::class];
    }

    public function handle(object $event): void
    {
        $this->counters[$event::class] = ($this->counters[$event::class] ?? 0) + 1;
        if ($event instanceof RequestReceived) {
            $this->started = $event->time;
        } elseif ($event instanceof ResponseReady && $this->started > 0) {
            $ms = (microtime(true) - $this->started) * 1000;
            $event->replaceResponse($event->response->withHeader('Server-Timing', sprintf('app;dur=%.2f', $ms)));
        }
    }

    public function counters(): array
    {
        return $this->counters;
    }
}
