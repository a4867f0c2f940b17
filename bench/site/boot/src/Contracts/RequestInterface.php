<?php

declare(strict_types=1);

namespace Bench\Boot\Contracts;

/**
 * An incoming HTTP request.
 */
interface RequestInterface
{
    public function method(): string;

    public function path(): string;

    public function query(string $key, mixed $default = null): mixed;

    public function header(string $name, ?string $default = null): ?string;

    public function withAttribute(string $name, mixed $value): static;

    public function attribute(string $name, mixed $default = null): mixed;
}
