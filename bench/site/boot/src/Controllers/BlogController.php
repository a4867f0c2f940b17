<?php

declare(strict_types=1);

namespace Bench\Boot\Controllers;

use Bench\Boot\Contracts\RequestInterface;
use Bench\Boot\Http\Response;
use Bench\Boot\Routing\AbstractController;

/**
 * Blog pages.
 */
final class BlogController extends AbstractController
{
    public function index(RequestInterface $request): Response
    {
        $page = max(1, (int) $request->query('page', 1));
        return $this->render('post', ['title' => "Blog, page $page", 'slug' => 'latest', 'summary' => 'No posts yet.']);
    }

    public function show(RequestInterface $request): Response
    {
        $slug = $this->param($request, 'slug');
        $summary = $this->container->get('cache')->remember('post.' . md5($slug), 60, fn () => ucfirst(str_replace('-', ' ', $slug)));
        return $this->render('post', ['title' => $slug, 'slug' => $slug, 'summary' => $summary]);
    }
}
