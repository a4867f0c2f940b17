<?php

declare(strict_types=1);

namespace Bench\Boot\Controllers;

use Bench\Boot\Contracts\RequestInterface;
use Bench\Boot\Http\Response;
use Bench\Boot\Routing\AbstractController;

/**
 * User profile pages.
 */
final class UserController extends AbstractController
{
    public function show(RequestInterface $request): Response
    {
        $id = (int) $this->param($request, 'id', '0');
        if ($id <= 0) {
            return new Response(404, "No such user\n");
        }
        return $this->json(['id' => $id, 'name' => "user$id"]);
    }

    public function update(RequestInterface $request): Response
    {
        $this->container->get('logger')->info('update user {id}', ['id' => $this->param($request, 'id')]);
        return $this->json(['updated' => true], 202);
    }
}
