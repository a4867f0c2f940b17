<?php

declare(strict_types=1);

namespace Bench\Boot\Routing;

use Bench\Boot\Contracts\RequestInterface;
use Bench\Boot\Contracts\RouteInterface;
use Bench\Boot\Contracts\RouterInterface;

/**
 * Matches requests against the routes, first match wins.
 */
final class Router implements RouterInterface
{
    private RouteCollection $routes;

    public function __construct()
    {
        $this->routes = new RouteCollection();
    }

    public function add(string $name, array $methods, string $pattern, array $handler): RouteInterface
    {
        if (!is_callable([$handler[0], $handler[1]], true) || !method_exists($handler[0], $handler[1])) {
            throw new \InvalidArgumentException("route $name: no action {$handler[0]}::{$handler[1]}");
        }
        $route = new Route($name, $methods, $pattern, $handler);
        $this->routes->add($route);
        return $route;
    }

    public function match(RequestInterface $request): ?RouteMatch
    {
        foreach ($this->routes as $route) {
            $params = $route->match($request->method(), $request->path());
            if ($params !== null) {
                return new RouteMatch($route, $params);
            }
        }
        return null;
    }

    public function url(string $name, array $params = []): string
    {
        $route = $this->routes->get($name) ?? throw new \OutOfBoundsException("no route $name");
        return preg_replace_callback('/\{(\w+)(?::[^}]+)?\}/', fn ($m) => rawurlencode((string) ($params[$m[1]] ?? '')), $route->pattern());
    }
}
