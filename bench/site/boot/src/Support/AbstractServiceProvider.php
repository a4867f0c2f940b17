<?php

declare(strict_types=1);

namespace Bench\Boot\Support;

use Bench\Boot\Contracts\ContainerInterface;
use Bench\Boot\Contracts\ServiceProviderInterface;

/**
 * Base of the service providers: keeps the ids it defines and a booted flag.
 */
abstract class AbstractServiceProvider implements ServiceProviderInterface
{
    protected bool $booted = false;

    /** @var list<string> */
    protected array $defined = [];

    abstract protected function definitions(): array;

    public function register(ContainerInterface $container): void
    {
        foreach ($this->definitions() as $id => $factory) {
            $container->set($id, $factory);
            $this->defined[] = $id;
        }
    }

    public function boot(ContainerInterface $container): void
    {
        $this->booted = true;
    }

    public function provides(): array
    {
        return $this->defined;
    }

    public function isBooted(): bool
    {
        return $this->booted;
    }
}
