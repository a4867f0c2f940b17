<?php
// The bench application's bootstrap, shared by boot.php (every request) and worker.php (once
// per worker): a PSR-4 autoloader counting the classes it loads into $GLOBALS['loaded'], and
// service providers filling the container. Returns the booted application.
declare(strict_types=1);

use Bench\Boot\Foundation\Application;
use Bench\Boot\Providers;

$GLOBALS['loaded'] = 0;
spl_autoload_register(static function (string $class): void {
    $prefix = 'Bench\\Boot\\';
    if (strncmp($class, $prefix, strlen($prefix)) !== 0) {
        return;
    }
    $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
    if (is_file($file)) {
        require $file;
        $GLOBALS['loaded']++;
    }
});

return (new Application(dirname(__DIR__)))
    ->register(new Providers\ConfigServiceProvider('production'))
    ->register(new Providers\LogServiceProvider())
    ->register(new Providers\CacheServiceProvider())
    ->register(new Providers\EventServiceProvider())
    ->register(new Providers\RoutingServiceProvider())
    ->register(new Providers\ViewServiceProvider())
    ->boot();
