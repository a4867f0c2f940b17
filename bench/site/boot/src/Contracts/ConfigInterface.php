<?php

declare(strict_types=1);

namespace Bench\Boot\Contracts;

/**
 * Read access to nested configuration with dotted keys.
 */
interface ConfigInterface
{
    public function get(string $key, mixed $default = null): mixed;

    public function has(string $key): bool;

    public function set(string $key, mixed $value): void;

    /** @return array<string, mixed> */
    public function all(): array;
}
