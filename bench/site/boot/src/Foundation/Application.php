<?php

declare(strict_types=1);

namespace Bench\Boot\Foundation;

use Bench\Boot\Container\Container;
use Bench\Boot\Contracts\ContainerInterface;
use Bench\Boot\Contracts\ServiceProviderInterface;
use Bench\Boot\Events\KernelBooted;
use Bench\Boot\Http\Kernel;
use Bench\Boot\Support\Str;

/**
 * Registers and boots the service providers, then builds the HTTP kernel.
 */
final class Application
{
    private ContainerInterface $container;

    /** @var list<ServiceProviderInterface> */
    private array $providers = [];

    private bool $booted = false;

    public function __construct(private readonly string $basePath)
    {
        $this->container = new Container();
        $this->container->set('app', fn () => $this);
    }

    public function register(ServiceProviderInterface $provider): self
    {
        $provider->register($this->container);
        $this->providers[] = $provider;
        return $this;
    }

    public function boot(): self
    {
        if (!$this->booted) {
            foreach ($this->providers as $provider) {
                $provider->boot($this->container);
            }
            $this->booted = true;
            $this->container->get('events')->dispatch(new KernelBooted($this->container, count($this->providers)));
        }
        return $this;
    }

    public function kernel(): Kernel
    {
        $c = $this->container;
        $middleware = [];
        foreach ($c->get('config')->get('middleware', []) as $name) {
            $class = 'Bench\\Boot\\Middleware\\' . Str::studly($name);
            $middleware[] = new $class($c->get('config')->get('session', []));
        }
        return new Kernel($c, $c->get('router'), $c->get('events'), $middleware);
    }

    public function container(): ContainerInterface
    {
        return $this->container;
    }

    public function basePath(): string
    {
        return $this->basePath;
    }
}
