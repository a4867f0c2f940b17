<?php

declare(strict_types=1);

namespace Bench\Boot\Http;

use Bench\Boot\Contracts\MiddlewareInterface;
use Bench\Boot\Contracts\RequestInterface;
use Bench\Boot\Contracts\ResponseInterface;

/**
 * Base middleware: a before hook, the next step, an after hook.
 */
abstract class AbstractMiddleware implements MiddlewareInterface
{
    public function __construct(protected array $options = [])
    {
    }

    public function process(RequestInterface $request, callable $next): ResponseInterface
    {
        $request = $this->before($request);
        $response = $next($request);
        return $this->after($request, $response);
    }

    protected function before(RequestInterface $request): RequestInterface
    {
        return $request;
    }

    protected function after(RequestInterface $request, ResponseInterface $response): ResponseInterface
    {
        return $response;
    }

    public function priority(): int
    {
        return (int) ($this->options['priority'] ?? 0);
    }
}
