<?php

declare(strict_types=1);

namespace Bench\Boot\Middleware;

use Bench\Boot\Contracts\RequestInterface;
use Bench\Boot\Contracts\ResponseInterface;
use Bench\Boot\Http\AbstractMiddleware;

/**
 * Trims the query string values.
 */
final class TrimStrings extends AbstractMiddleware
{
    public function priority(): int
    {
        return (int) ($this->options['priority'] ?? 30);
    }

    protected function before(RequestInterface $request): RequestInterface
    {
        $trimmed = 0;
        foreach ($_GET as $key => $value) {
            if (is_string($value) && $value !== trim($value)) {
                $trimmed++;
            }
        }
        return $request->withAttribute('trimmed', $trimmed);
    }
}
