<?php

declare(strict_types=1);

namespace Bench\Boot\Config;

/**
 * Builds the configuration arrays (what a framework reads from config/*.php).
 */
final class Loader
{
    public function __construct(private readonly string $environment = 'production')
    {
    }

    /** @return array<string, mixed> */
    public function load(): array
    {
        $config = [
            'app' => ['name' => 'Boot bench', 'env' => $this->environment, 'debug' => false,
                      'timezone' => 'UTC', 'locale' => 'en', 'url' => 'http://127.0.0.1'],
            'cache' => ['default' => 'array', 'prefix' => 'boot_', 'ttl' => 300],
            'log' => ['level' => 'info', 'channel' => 'memory'],
            'session' => ['driver' => 'array', 'lifetime' => 120, 'cookie' => 'boot_session'],
            'view' => ['paths' => ['templates'], 'cache' => false],
            'middleware' => ['trim_strings', 'session_start', 'csrf_guard', 'content_type'],
            'routes' => [
                ['home', ['GET'], '/', ['HomeController', 'index']],
                ['blog.index', ['GET'], '/blog', ['BlogController', 'index']],
                ['blog.show', ['GET'], '/blog/{slug}', ['BlogController', 'show']],
                ['user.show', ['GET'], '/users/{id:\\d+}', ['UserController', 'show']],
                ['user.update', ['POST', 'PUT'], '/users/{id:\\d+}', ['UserController', 'update']],
                ['api.status', ['GET'], '/api/status', ['ApiController', 'status']],
                ['api.items', ['GET'], '/api/items/{page:\\d+}', ['ApiController', 'items']],
            ],
        ];
        if ($this->environment === 'local') {
            $config['app']['debug'] = true;
            $config['log']['level'] = 'debug';
        }
        return $config;
    }
}
