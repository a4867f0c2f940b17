<?php

declare(strict_types=1);

namespace Bench\Boot\Middleware;

use Bench\Boot\Contracts\RequestInterface;
use Bench\Boot\Contracts\ResponseInterface;
use Bench\Boot\Http\AbstractMiddleware;
use Bench\Boot\Http\Response;

/**
 * Rejects unsafe methods without a matching token.
 */
final class CsrfGuard extends AbstractMiddleware
{
    public function priority(): int
    {
        return (int) ($this->options['priority'] ?? 10);
    }

    private const SAFE = ['GET', 'HEAD', 'OPTIONS'];

    public function process(RequestInterface $request, callable $next): ResponseInterface
    {
        if (!in_array($request->method(), self::SAFE, true)) {
            $token = $request->header('X-Csrf-Token');
            if ($token === null || !hash_equals((string) $request->attribute('session.id'), $token)) {
                return new Response(419, "CSRF token mismatch\n");
            }
        }
        return $next($request);
    }
}
