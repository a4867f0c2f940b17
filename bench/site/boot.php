<?php
// Framework-like bootstrap: a PSR-4 autoloader, service providers filling a container, config
// arrays, middleware, an event dispatcher and a router matching a route; 60 classes touched per
// request, as a framework's front controller does before it renders anything.
declare(strict_types=1);

$loaded = 0;
spl_autoload_register(static function (string $class) use (&$loaded): void {
    $prefix = 'Bench\\Boot\\';
    if (strncmp($class, $prefix, strlen($prefix)) !== 0) {
        return;
    }
    $file = __DIR__ . '/boot/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
    if (is_file($file)) {
        require $file;
        $loaded++;
    }
});

use Bench\Boot\Foundation\Application;
use Bench\Boot\Http\Request;
use Bench\Boot\Providers;

$app = (new Application(__DIR__))
    ->register(new Providers\ConfigServiceProvider('production'))
    ->register(new Providers\LogServiceProvider())
    ->register(new Providers\CacheServiceProvider())
    ->register(new Providers\EventServiceProvider())
    ->register(new Providers\RoutingServiceProvider())
    ->register(new Providers\ViewServiceProvider())
    ->boot();

// Whatever URL reached this script, the page served is the blog post route.
$request = new Request('GET', '/blog/hello-from-the-benchmark', $_GET);
$kernel = $app->kernel();
$response = $kernel->handle($request->withAttribute('boot.classes', $loaded));
$response->send();
echo "<!-- classes loaded: $loaded -->\n";
