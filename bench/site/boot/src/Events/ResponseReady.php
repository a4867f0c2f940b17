<?php

declare(strict_types=1);

namespace Bench\Boot\Events;

use Bench\Boot\Contracts\RequestInterface;
use Bench\Boot\Contracts\ResponseInterface;

/**
 * Dispatched before the response is sent; listeners may replace it.
 */
final class ResponseReady extends AbstractEvent
{
    public function __construct(public readonly RequestInterface $request, public ResponseInterface $response)
    {
        parent::__construct();
    }

    public function replaceResponse(ResponseInterface $response): void
    {
        $this->response = $response;
    }
}
