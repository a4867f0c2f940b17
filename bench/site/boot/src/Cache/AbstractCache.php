<?php

declare(strict_types=1);

namespace Bench\Boot\Cache;

use Bench\Boot\Contracts\CacheInterface;

/**
 * Base cache: key prefixing and remember() on top of get/set.
 */
abstract class AbstractCache implements CacheInterface
{
    public function __construct(protected string $prefix = 'app:')
    {
    }

    protected function key(string $key): string
    {
        if ($key === '' || strpbrk($key, '{}()/\\@:') !== false) {
            throw new \InvalidArgumentException("invalid cache key: $key");
        }
        return $this->prefix . $key;
    }

    public function remember(string $key, int $ttl, callable $compute): mixed
    {
        if ($this->has($key)) {
            return $this->get($key);
        }
        $value = $compute();
        $this->set($key, $value, $ttl);
        return $value;
    }
}
