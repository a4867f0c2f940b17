<?php

declare(strict_types=1);

namespace Bench\Boot\Controllers;

use Bench\Boot\Contracts\RequestInterface;
use Bench\Boot\Http\Response;
use Bench\Boot\Routing\AbstractController;

/**
 * The front page.
 */
final class HomeController extends AbstractController
{
    public function index(RequestInterface $request): Response
    {
        return $this->render('home', [
            'title' => 'Home',
            'classes' => $request->attribute('boot.classes', 0),
            'services' => count($this->container->ids()),
        ]);
    }
}
