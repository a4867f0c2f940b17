<?php

declare(strict_types=1);

namespace Bench\Boot\Listeners;

use Bench\Boot\Contracts\ListenerInterface;
use Bench\Boot\Contracts\LoggerInterface;
use Bench\Boot\Events\RequestReceived;
use Bench\Boot\Events\RouteMatched;

/**
 * Logs every request and the route it matched.
 */
final class LogRequestListener implements ListenerInterface
{
    public function __construct(private readonly LoggerInterface $logger)
    {
    }

    public static function subscribedTo(): array
    {
        return [RequestReceived::class, RouteMatched::class];
    }

    public function handle(object $event): void
    {
        if ($event instanceof RequestReceived) {
            $this->logger->info('{method} {path}', ['method' => $event->request->method(), 'path' => $event->request->path()]);
        } elseif ($event instanceof RouteMatched) {
            $this->logger->debug('matched {route}', ['route' => $event->routeName()]);
        }
    }
}
