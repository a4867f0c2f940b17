<?php

declare(strict_types=1);

namespace Bench\Boot\Http;

use Bench\Boot\Contracts\ResponseInterface;

/**
 * An immutable response.
 */
final class Response implements ResponseInterface
{
    private HeaderBag $headers;

    public function __construct(private readonly int $status = 200, private readonly string $body = '', array $headers = [])
    {
        $this->headers = new HeaderBag($headers);
    }

    public function status(): int { return $this->status; }

    public function body(): string { return $this->body; }

    public function withHeader(string $name, string $value): static
    {
        $clone = clone $this;
        $clone->headers = clone $this->headers;
        $clone->headers->set($name, $value);
        return $clone;
    }

    public function headers(): array
    {
        return $this->headers->all();
    }

    public function send(): void
    {
        if (!headers_sent()) {
            http_response_code($this->status);
            foreach ($this->headers->all() as $name => $value) {
                header("$name: $value");
            }
        }
        echo $this->body;
    }
}
