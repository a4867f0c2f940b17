<?php

declare(strict_types=1);

namespace Bench\Boot\Controllers;

use Bench\Boot\Contracts\RequestInterface;
use Bench\Boot\Http\Response;
use Bench\Boot\Routing\AbstractController;

/**
 * A tiny JSON API.
 */
final class ApiController extends AbstractController
{
    public function status(RequestInterface $request): Response
    {
        return $this->json(['status' => 'ok', 'php' => PHP_VERSION, 'services' => count($this->container->ids())]);
    }

    public function items(RequestInterface $request): Response
    {
        $page = (int) $this->param($request, 'page', '1');
        $items = array_map(fn ($i) => ['id' => $i, 'name' => "item $i"], range(($page - 1) * 10 + 1, $page * 10));
        return $this->json(['page' => $page, 'items' => $items]);
    }
}
