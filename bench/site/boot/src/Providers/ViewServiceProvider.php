<?php

declare(strict_types=1);

namespace Bench\Boot\Providers;

use Bench\Boot\Contracts\ContainerInterface;
use Bench\Boot\Support\AbstractServiceProvider;
use Bench\Boot\View\Escaper;
use Bench\Boot\View\Renderer;

/**
 * The template renderer.
 */
final class ViewServiceProvider extends AbstractServiceProvider
{
    protected function definitions(): array
    {
        return [
            'view.escaper' => fn () => new Escaper('UTF-8'),
            'view' => fn (ContainerInterface $c) => new Renderer($c->get('view.escaper'), [
                'app' => $c->get('config')->get('app.name'),
            ]),
        ];
    }
}
