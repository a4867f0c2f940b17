<?php
// Worker mode ([php] worker = "worker.php"): boot.php's application booted once per worker
// process, then each request only runs the kernel, as FrankenPHP's and Isola's worker mode
// let a framework do; `?hello` answers hello.php's page from the same loop.
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
$kernel = $app->kernel();

$handler = static function () use ($kernel, &$loaded): void {
    if (isset($_GET['hello'])) {
        echo "Hello, world!\n";
        return;
    }
    $request = new Request('GET', '/blog/hello-from-the-benchmark', $_GET);
    $response = $kernel->handle($request->withAttribute('boot.classes', $loaded));
    $response->send();
    echo "<!-- classes loaded: $loaded -->\n";
};
while (frankenphp_handle_request($handler)) {
    gc_collect_cycles();
}
