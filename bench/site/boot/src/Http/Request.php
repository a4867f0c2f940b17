<?php

declare(strict_types=1);

namespace Bench\Boot\Http;

use Bench\Boot\Contracts\RequestInterface;

/**
 * An immutable request built from the PHP globals.
 */
final class Request implements RequestInterface
{
    private array $attributes = [];

    public function __construct(
        private readonly string $method,
        private readonly string $path,
        private readonly array $query = [],
        private readonly HeaderBag $headers = new HeaderBag(),
    ) {
    }

    public static function fromGlobals(): self
    {
        $uri = $_SERVER['REQUEST_URI'] ?? '/';
        $path = parse_url($uri, PHP_URL_PATH) ?: '/';
        return new self(strtoupper($_SERVER['REQUEST_METHOD'] ?? 'GET'), $path, $_GET, HeaderBag::fromServer($_SERVER));
    }

    public function method(): string { return $this->method; }

    public function path(): string { return $this->path; }

    public function query(string $key, mixed $default = null): mixed
    {
        return $this->query[$key] ?? $default;
    }

    public function header(string $name, ?string $default = null): ?string
    {
        return $this->headers->get($name, $default);
    }

    public function withAttribute(string $name, mixed $value): static
    {
        $clone = clone $this;
        $clone->attributes[$name] = $value;
        return $clone;
    }

    public function attribute(string $name, mixed $default = null): mixed
    {
        return $this->attributes[$name] ?? $default;
    }
}
