<?php

declare(strict_types=1);

namespace Bench\Boot\Contracts;

/**
 * A step of the HTTP pipeline.
 */
interface MiddlewareInterface
{
    /** @param callable(RequestInterface): ResponseInterface $next */
    public function process(RequestInterface $request, callable $next): ResponseInterface;

    public function priority(): int;
}
