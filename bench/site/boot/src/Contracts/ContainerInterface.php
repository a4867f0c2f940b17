<?php

declare(strict_types=1);

namespace Bench\Boot\Contracts;

/**
 * Service container: builds and shares services by id.
 */
interface ContainerInterface
{
    public function get(string $id): mixed;

    public function has(string $id): bool;

    /** @param callable(ContainerInterface): mixed $factory */
    public function set(string $id, callable $factory, bool $shared = true): void;

    public function alias(string $alias, string $id): void;

    /** @return list<string> */
    public function ids(): array;
}
