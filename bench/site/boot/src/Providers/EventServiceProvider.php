<?php

declare(strict_types=1);

namespace Bench\Boot\Providers;

use Bench\Boot\Contracts\ContainerInterface;
use Bench\Boot\Support\AbstractServiceProvider;
use Bench\Boot\Events\Dispatcher;
use Bench\Boot\Listeners\LogRequestListener;
use Bench\Boot\Listeners\MetricsListener;
use Bench\Boot\Listeners\SecurityHeadersListener;

/**
 * The event dispatcher and its listeners.
 */
final class EventServiceProvider extends AbstractServiceProvider
{
    protected function definitions(): array
    {
        return [
            'events' => fn () => new Dispatcher(),
            'metrics' => fn () => new MetricsListener(),
        ];
    }

    public function boot(ContainerInterface $container): void
    {
        $events = $container->get('events');
        $listeners = [
            new LogRequestListener($container->get('logger')),
            $container->get('metrics'),
            new SecurityHeadersListener((bool) $container->get('config')->get('app.hsts', false)),
        ];
        foreach ($listeners as $priority => $listener) {
            foreach ($listener::subscribedTo() as $event) {
                $events->listen($event, $listener, 10 - $priority);
            }
        }
        parent::boot($container);
    }
}
