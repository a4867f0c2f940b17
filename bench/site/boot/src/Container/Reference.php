<?php

declare(strict_types=1);

namespace Bench\Boot\Container;

use Bench\Boot\Contracts\ContainerInterface;

/**
 * A lazy reference to another service, resolved when the definition is built.
 */
final class Reference
{
    public function __construct(public readonly string $id, private readonly bool $optional = false)
    {
    }

    public static function to(string $id): self
    {
        return new self($id);
    }

    public static function optional(string $id): self
    {
        return new self($id, true);
    }

    public function resolve(ContainerInterface $container): mixed
    {
        if ($this->optional && !$container->has($this->id)) {
            return null;
        }
        return $container->get($this->id);
    }

    public function __toString(): string
    {
        return '@' . $this->id . ($this->optional ? '?' : '');
    }
}
