<?php

declare(strict_types=1);

namespace Bench\Boot\Http;

use Bench\Boot\Contracts\ContainerInterface;
use Bench\Boot\Contracts\EventDispatcherInterface;
use Bench\Boot\Contracts\MiddlewareInterface;
use Bench\Boot\Contracts\RequestInterface;
use Bench\Boot\Contracts\ResponseInterface;
use Bench\Boot\Contracts\RouterInterface;
use Bench\Boot\Events\RequestReceived;
use Bench\Boot\Events\ResponseReady;
use Bench\Boot\Events\RouteMatched;

/**
 * Runs a request through the middleware pipeline to the matched controller action.
 */
final class Kernel
{
    /** @param list<MiddlewareInterface> $middleware */
    public function __construct(
        private readonly ContainerInterface $container,
        private readonly RouterInterface $router,
        private readonly EventDispatcherInterface $events,
        private array $middleware = [],
    ) {
        usort($this->middleware, fn ($a, $b) => $b->priority() <=> $a->priority());
    }

    public function handle(RequestInterface $request): ResponseInterface
    {
        $request = $this->events->dispatch(new RequestReceived($request))->request;
        $pipeline = array_reduce(
            array_reverse($this->middleware),
            fn (callable $next, MiddlewareInterface $m) => fn (RequestInterface $r) => $m->process($r, $next),
            fn (RequestInterface $r) => $this->dispatchToController($r)
        );
        $response = $pipeline($request);
        return $this->events->dispatch(new ResponseReady($request, $response))->response;
    }

    private function dispatchToController(RequestInterface $request): ResponseInterface
    {
        $match = $this->router->match($request);
        if ($match === null) {
            return new Response(404, "Not found\n", ['Content-Type' => 'text/plain']);
        }
        $this->events->dispatch(new RouteMatched($request, $match));
        $class = $match->controller();
        $controller = new $class($this->container);
        return $controller->{$match->action()}($request->withAttribute('route.params', $match->params));
    }
}
