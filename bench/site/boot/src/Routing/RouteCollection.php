<?php

declare(strict_types=1);

namespace Bench\Boot\Routing;

use Bench\Boot\Contracts\RouteInterface;

/**
 * Routes by name, in the order they were added.
 */
final class RouteCollection implements \IteratorAggregate, \Countable
{
    /** @var array<string, RouteInterface> */
    private array $routes = [];

    public function add(RouteInterface $route): void
    {
        if (isset($this->routes[$route->name()])) {
            throw new \LogicException('duplicate route name ' . $route->name());
        }
        $this->routes[$route->name()] = $route;
    }

    public function get(string $name): ?RouteInterface
    {
        return $this->routes[$name] ?? null;
    }

    public function getIterator(): \ArrayIterator
    {
        return new \ArrayIterator($this->routes);
    }

    public function count(): int
    {
        return count($this->routes);
    }
}
