<?php

declare(strict_types=1);

namespace Bench\Boot\Cache;

/**
 * In-memory cache, for one request.
 */
final class ArrayCache extends AbstractCache
{
    /** @var array<string, array{0: mixed, 1: float}> value and expiry (0 = never) */
    private array $items = [];

    public function get(string $key, mixed $default = null): mixed
    {
        return $this->has($key) ? $this->items[$this->key($key)][0] : $default;
    }

    public function set(string $key, mixed $value, int $ttl = 0): bool
    {
        $this->items[$this->key($key)] = [$value, $ttl > 0 ? microtime(true) + $ttl : 0.0];
        return true;
    }

    public function has(string $key): bool
    {
        $item = $this->items[$this->key($key)] ?? null;
        return $item !== null && ($item[1] === 0.0 || $item[1] > microtime(true));
    }

    public function delete(string $key): bool
    {
        $k = $this->key($key);
        $found = isset($this->items[$k]);
        unset($this->items[$k]);
        return $found;
    }
}
