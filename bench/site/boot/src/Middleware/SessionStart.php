<?php

declare(strict_types=1);

namespace Bench\Boot\Middleware;

use Bench\Boot\Contracts\RequestInterface;
use Bench\Boot\Contracts\ResponseInterface;
use Bench\Boot\Http\AbstractMiddleware;

/**
 * Gives every request a session id (kept in memory: no session files).
 */
final class SessionStart extends AbstractMiddleware
{
    public function priority(): int
    {
        return (int) ($this->options['priority'] ?? 20);
    }

    protected function before(RequestInterface $request): RequestInterface
    {
        $cookie = $this->options['cookie'] ?? 'session';
        $id = $_COOKIE[$cookie] ?? bin2hex(random_bytes(8));
        return $request->withAttribute('session.id', $id);
    }

    protected function after(RequestInterface $request, ResponseInterface $response): ResponseInterface
    {
        return $response->withHeader('X-Session', substr((string) $request->attribute('session.id'), 0, 4));
    }
}
