<?php

declare(strict_types=1);

namespace Bench\Boot\Config;

use Bench\Boot\Contracts\ConfigInterface;
use Bench\Boot\Support\Arr;

/**
 * Configuration values, read with dotted keys ("app.name").
 */
final class Repository implements ConfigInterface
{
    /** @param array<string, mixed> $items */
    public function __construct(private array $items = [])
    {
    }

    public function get(string $key, mixed $default = null): mixed
    {
        return Arr::get($this->items, $key, $default);
    }

    public function has(string $key): bool
    {
        return Arr::has($this->items, $key);
    }

    public function set(string $key, mixed $value): void
    {
        Arr::set($this->items, $key, $value);
    }

    public function all(): array
    {
        return $this->items;
    }

    public function merge(array $items): void
    {
        $this->items = array_replace_recursive($this->items, $items);
    }
}
