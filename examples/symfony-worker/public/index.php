<?php
// A Symfony HttpKernel application in worker mode, from Debian's php-symfony-* packages:
// the kernel, its routes and listeners are built once per worker; each request is a fresh
// Request::createFromGlobals() handled by the same kernel.
require_once '/usr/share/php/Symfony/Component/HttpKernel/autoload.php';
require_once '/usr/share/php/Symfony/Component/Routing/autoload.php';

use Symfony\Component\EventDispatcher\EventDispatcher;
use Symfony\Component\HttpFoundation\JsonResponse;
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

$booted = getmypid();
$served = 0;
$routes = new RouteCollection();
$routes->add('hello', new Route('/hello/{name}', ['_controller' =>
    static function (Request $request, string $name) use (&$served, $booted): Response {
        return new JsonResponse([
            'hello' => $name, 'query' => $request->query->all(), 'served' => $served,
            'booted' => $booted, 'method' => $request->getMethod(),
        ]);
    }]));
$routes->add('form', new Route('/form', ['_controller' =>
    static fn (Request $request): Response => new JsonResponse(['form' => $request->request->all()])]));

$requests = new RequestStack();
$dispatcher = new EventDispatcher();
$dispatcher->addSubscriber(new RouterListener(new UrlMatcher($routes, new RequestContext()), $requests));
// An HTTP error (no route: 404) is an answer, not a crash of the request.
$dispatcher->addListener(KernelEvents::EXCEPTION, static function (ExceptionEvent $event): void {
    $e = $event->getThrowable();
    $status = $e instanceof HttpExceptionInterface ? $e->getStatusCode() : 500;
    $event->setResponse(new Response(Response::$statusTexts[$status] . "\n", $status));
});
$kernel = new HttpKernel($dispatcher, new ControllerResolver(), $requests, new ArgumentResolver());

$handler = static function () use ($kernel, &$served): void {
    $served++;
    $request = Request::createFromGlobals();
    $response = $kernel->handle($request);
    $response->send();
    $kernel->terminate($request, $response);
};
while (frankenphp_handle_request($handler)) {
    gc_collect_cycles();
}
