<?php

declare(strict_types=1);

namespace Bench\Boot\Contracts;

/**
 * Maps a request to a route.
 */
interface RouterInterface
{
    /** @param array{0: class-string, 1: string} $handler */
    public function add(string $name, array $methods, string $pattern, array $handler): RouteInterface;

    public function match(RequestInterface $request): ?\Bench\Boot\Routing\RouteMatch;

    public function url(string $name, array $params = []): string;
}
