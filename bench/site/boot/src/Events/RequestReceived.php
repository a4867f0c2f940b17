<?php

declare(strict_types=1);

namespace Bench\Boot\Events;

use Bench\Boot\Contracts\RequestInterface;

/**
 * Dispatched when the kernel takes a request.
 */
final class RequestReceived extends AbstractEvent
{
    public function __construct(public RequestInterface $request)
    {
        parent::__construct();
    }

    public function replaceRequest(RequestInterface $request): void
    {
        $this->request = $request;
    }
}
