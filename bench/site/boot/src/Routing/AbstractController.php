<?php

declare(strict_types=1);

namespace Bench\Boot\Routing;

use Bench\Boot\Contracts\ContainerInterface;
use Bench\Boot\Contracts\RequestInterface;
use Bench\Boot\Http\Response;
use Bench\Boot\View\Renderer;

/**
 * Base controller: access to the container and a few response helpers.
 */
abstract class AbstractController
{
    public function __construct(protected ContainerInterface $container)
    {
    }

    protected function render(string $template, array $vars = []): Response
    {
        /** @var Renderer $view */
        $view = $this->container->get('view');
        return new Response(200, $view->render($template, $vars), ['Content-Type' => 'text/html; charset=utf-8']);
    }

    protected function json(array $data, int $status = 200): Response
    {
        return new Response($status, json_encode($data, JSON_THROW_ON_ERROR), ['Content-Type' => 'application/json']);
    }

    protected function param(RequestInterface $request, string $name, string $default = ''): string
    {
        $params = $request->attribute('route.params', []);
        return (string) ($params[$name] ?? $default);
    }
}
