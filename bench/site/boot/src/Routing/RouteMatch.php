<?php

declare(strict_types=1);

namespace Bench\Boot\Routing;

use Bench\Boot\Contracts\RouteInterface;

/**
 * The result of matching a request: the route and its parameters.
 */
final class RouteMatch
{
    /** @param array<string, string> $params */
    public function __construct(public readonly RouteInterface $route, public readonly array $params = [])
    {
    }

    public function controller(): string
    {
        return $this->route->handler()[0];
    }

    public function action(): string
    {
        return $this->route->handler()[1];
    }

    public function param(string $name, ?string $default = null): ?string
    {
        return $this->params[$name] ?? $default;
    }
}
