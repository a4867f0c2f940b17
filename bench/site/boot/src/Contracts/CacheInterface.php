<?php

declare(strict_types=1);

namespace Bench\Boot\Contracts;

/**
 * Key/value cache with a time to live.
 */
interface CacheInterface
{
    public function get(string $key, mixed $default = null): mixed;

    public function set(string $key, mixed $value, int $ttl = 0): bool;

    public function has(string $key): bool;

    public function delete(string $key): bool;

    /** @param callable(): mixed $compute */
    public function remember(string $key, int $ttl, callable $compute): mixed;
}
