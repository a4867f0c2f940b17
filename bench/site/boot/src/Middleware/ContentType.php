<?php

declare(strict_types=1);

namespace Bench\Boot\Middleware;

use Bench\Boot\Contracts\RequestInterface;
use Bench\Boot\Contracts\ResponseInterface;
use Bench\Boot\Http\AbstractMiddleware;

/**
 * Sets a default Content-Type on responses that have none.
 */
final class ContentType extends AbstractMiddleware
{
    public function priority(): int
    {
        return (int) ($this->options['priority'] ?? 0);
    }

    protected function after(RequestInterface $request, ResponseInterface $response): ResponseInterface
    {
        if (!isset(array_change_key_case($response->headers())['content-type'])) {
            $response = $response->withHeader('Content-Type', $this->options['default'] ?? 'text/html; charset=utf-8');
        }
        return $response;
    }
}
