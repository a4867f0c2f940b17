<?php

declare(strict_types=1);

namespace Bench\Boot\Events;

use Bench\Boot\Contracts\RequestInterface;
use Bench\Boot\Routing\RouteMatch;

/**
 * Dispatched when the router found a route.
 */
final class RouteMatched extends AbstractEvent
{
    public function __construct(public readonly RequestInterface $request, public readonly RouteMatch $match)
    {
        parent::__construct();
    }

    public function routeName(): string
    {
        return $this->match->route->name();
    }
}
