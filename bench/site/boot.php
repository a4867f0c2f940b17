<?php
// Framework-like bootstrap: a PSR-4 autoloader, service providers filling a container, config
// arrays, middleware, an event dispatcher and a router matching a route; 60 classes touched per
// request, as a framework's front controller does before it renders anything.
declare(strict_types=1);

use Bench\Boot\Http\Request;

$app = require __DIR__ . '/boot/bootstrap.php';
$loaded = &$GLOBALS['loaded'];

// Whatever URL reached this script, the page served is the blog post route.
$request = new Request('GET', '/blog/hello-from-the-benchmark', $_GET);
$kernel = $app->kernel();
$response = $kernel->handle($request->withAttribute('boot.classes', $loaded));
$response->send();
echo "<!-- classes loaded: $loaded -->\n";
