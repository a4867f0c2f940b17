<?php
// A Symfony HttpKernel application from Debian's php-symfony-* packages (no Composer): routes,
// the router listener, an exception listener, and a controller rendering a small page. Returns
// the kernel; symfony.php builds it on every request (classic), worker.php once per worker.
require_once '/usr/share/php/Symfony/Component/HttpKernel/autoload.php';
require_once '/usr/share/php/Symfony/Component/Routing/autoload.php';

use Symfony\Component\EventDispatcher\EventDispatcher;
use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\RequestStack;
use Symfony\Component\HttpFoundation\Response;
use Symfony\Component\HttpKernel\Controller\ArgumentResolver;
use Symfony\Component\HttpKernel\Controller\ControllerResolver;
use Symfony\Component\HttpKernel\Event\ExceptionEvent;
use Symfony\Component\HttpKernel\EventListener\RouterListener;
use Symfony\Component\HttpKernel\Exception\HttpExceptionInterface;
use Symfony\Component\HttpKernel\HttpKernel;
use Symfony\Component\HttpKernel\KernelEvents;
use Symfony\Component\Routing\Matcher\UrlMatcher;
use Symfony\Component\Routing\RequestContext;
use Symfony\Component\Routing\Route;
use Symfony\Component\Routing\RouteCollection;

$routes = new RouteCollection();
foreach (['home' => '/', 'blog' => '/blog/{slug}', 'about' => '/about'] as $name => $path) {
    $routes->add($name, new Route($path, ['_controller' =>
        static function (Request $request) use ($name): Response {
            $slug = htmlspecialchars((string) $request->attributes->get('slug', $name));
            return new Response("<!doctype html><title>$slug</title><h1>$slug</h1><p>Served by HttpKernel.</p>\n");
        }]));
}
$requests = new RequestStack();
$dispatcher = new EventDispatcher();
$dispatcher->addSubscriber(new RouterListener(new UrlMatcher($routes, new RequestContext()), $requests));
$dispatcher->addListener(KernelEvents::EXCEPTION, static function (ExceptionEvent $event): void {
    $e = $event->getThrowable();
    $status = $e instanceof HttpExceptionInterface ? $e->getStatusCode() : 500;
    $event->setResponse(new Response(Response::$statusTexts[$status] . "\n", $status));
});
return new HttpKernel($dispatcher, new ControllerResolver(), $requests, new ArgumentResolver());
