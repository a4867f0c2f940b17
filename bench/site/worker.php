<?php
// Worker mode ([php] worker = "worker.php"): boot.php's application booted once per worker
// process, then each request only runs the kernel, as FrankenPHP's and Isola's worker mode
// let a framework do; `?hello` answers hello.php's page from the same loop.
declare(strict_types=1);

use Bench\Boot\Http\Request;

$app = require __DIR__ . '/boot/bootstrap.php';
$loaded = &$GLOBALS['loaded'];
$kernel = $app->kernel();
// The Symfony scenario's kernel (symfony.php builds it per request), when the packages exist.
$symfony = is_file('/usr/share/php/Symfony/Component/HttpKernel/autoload.php')
    ? require __DIR__ . '/symfony/kernel.php' : null;
// The leak scenario keeps 256 KiB per request here, as a leaking app would.
$leaked = [];

$handler = static function () use ($kernel, $symfony, &$loaded, &$leaked): void {
    if (isset($_GET['hello'])) {
        echo "Hello, world!\n";
        return;
    }
    if (isset($_GET['symfony']) && $symfony) {
        $request = \Symfony\Component\HttpFoundation\Request::create('/blog/hello-from-the-benchmark');
        $response = $symfony->handle($request);
        $response->send();
        $symfony->terminate($request, $response);
        return;
    }
    if (isset($_GET['leak'])) {
        $leaked[] = str_repeat('x', 256 << 10);
        echo 'leaked ', count($leaked) * 256, " KiB\n";
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
