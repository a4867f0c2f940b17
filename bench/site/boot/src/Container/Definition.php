<?php

declare(strict_types=1);

namespace Bench\Boot\Container;

use Bench\Boot\Contracts\ContainerInterface;

/**
 * How to build one service, with optional method calls after construction.
 */
final class Definition
{
    /** @var callable */
    private $factory;

    /** @var list<array{0: string, 1: array}> */
    private array $calls = [];

    public function __construct(public readonly string $id, callable $factory, public readonly bool $shared = true)
    {
        $this->factory = $factory;
    }

    public function call(string $method, array $arguments = []): self
    {
        $this->calls[] = [$method, $arguments];
        return $this;
    }

    public function build(ContainerInterface $container): mixed
    {
        $object = ($this->factory)($container);
        foreach ($this->calls as [$method, $arguments]) {
            $resolved = array_map(
                fn ($a) => $a instanceof Reference ? $a->resolve($container) : $a,
                $arguments
            );
            $object->$method(...$resolved);
        }
        return $object;
    }
}
