<?php

declare(strict_types=1);

namespace Bench\Boot\Http;

/**
 * Case-insensitive HTTP headers.
 */
final class HeaderBag implements \Countable
{
    /** @var array<string, array{0: string, 1: string}> lower-case name => [name, value] */
    private array $headers = [];

    public function __construct(array $headers = [])
    {
        foreach ($headers as $name => $value) {
            $this->set((string) $name, (string) $value);
        }
    }

    public static function fromServer(array $server): self
    {
        $headers = [];
        foreach ($server as $key => $value) {
            if (str_starts_with($key, 'HTTP_')) {
                $headers[str_replace('_', '-', ucwords(strtolower(substr($key, 5)), '_'))] = $value;
            }
        }
        return new self($headers);
    }

    public function set(string $name, string $value): void
    {
        $this->headers[strtolower($name)] = [$name, $value];
    }

    public function get(string $name, ?string $default = null): ?string
    {
        return $this->headers[strtolower($name)][1] ?? $default;
    }

    public function all(): array
    {
        return array_column($this->headers, 1, 0);
    }

    public function count(): int
    {
        return count($this->headers);
    }
}
