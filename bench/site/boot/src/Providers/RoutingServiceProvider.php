<?php

declare(strict_types=1);

namespace Bench\Boot\Providers;

use Bench\Boot\Contracts\ContainerInterface;
use Bench\Boot\Support\AbstractServiceProvider;
use Bench\Boot\Routing\Router;

/**
 * The router, with the routes of the configuration.
 */
final class RoutingServiceProvider extends AbstractServiceProvider
{
    private const CONTROLLERS = 'Bench\\Boot\\Controllers\\';

    protected function definitions(): array
    {
        return [
            'router' => function (ContainerInterface $c) {
                $router = new Router();
                foreach ($c->get('config')->get('routes', []) as [$name, $methods, $pattern, [$class, $action]]) {
                    $router->add($name, $methods, $pattern, [self::CONTROLLERS . $class, $action]);
                }
                return $router;
            },
        ];
    }

    public function boot(ContainerInterface $container): void
    {
        // Routes are compiled at boot, as a framework without a route cache does.
        $container->get('router');
        parent::boot($container);
    }
}
