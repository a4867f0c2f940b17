<?php

declare(strict_types=1);

namespace Bench\Boot\Container;

use Bench\Boot\Contracts\ContainerInterface;

/**
 * A small service container: factories, shared instances, aliases.
 */
final class Container implements ContainerInterface
{
    /** @var array<string, Definition> */
    private array $definitions = [];

    /** @var array<string, mixed> */
    private array $instances = [];

    /** @var array<string, string> */
    private array $aliases = [];

    /** @var array<string, true> */
    private array $resolving = [];

    public function set(string $id, callable $factory, bool $shared = true): void
    {
        $this->definitions[$id] = new Definition($id, $factory, $shared);
        unset($this->instances[$id]);
    }

    public function alias(string $alias, string $id): void
    {
        $this->aliases[$alias] = $id;
    }

    public function has(string $id): bool
    {
        $id = $this->aliases[$id] ?? $id;
        return isset($this->definitions[$id]) || isset($this->instances[$id]);
    }

    public function get(string $id): mixed
    {
        $id = $this->aliases[$id] ?? $id;
        if (array_key_exists($id, $this->instances)) {
            return $this->instances[$id];
        }
        $def = $this->definitions[$id] ?? throw new \OutOfBoundsException("no service '$id'");
        if (isset($this->resolving[$id])) {
            throw new \LogicException("circular dependency on '$id'");
        }
        $this->resolving[$id] = true;
        try {
            $value = $def->build($this);
        } finally {
            unset($this->resolving[$id]);
        }
        if ($def->shared) {
            $this->instances[$id] = $value;
        }
        return $value;
    }

    public function ids(): array
    {
        return array_keys($this->definitions + $this->instances);
    }
}
