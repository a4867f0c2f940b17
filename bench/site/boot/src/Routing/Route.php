<?php

declare(strict_types=1);

namespace Bench\Boot\Routing;

use Bench\Boot\Contracts\RouteInterface;

/**
 * A route whose pattern ("/users/{id:\\d+}") is compiled to a regular expression once.
 */
final class Route implements RouteInterface
{
    private ?string $regex = null;

    /** @var list<string> */
    private array $params = [];

    public function __construct(
        private readonly string $name,
        private readonly array $methods,
        private readonly string $pattern,
        private readonly array $handler,
    ) {
    }

    public function name(): string { return $this->name; }

    public function methods(): array { return $this->methods; }

    public function pattern(): string { return $this->pattern; }

    public function handler(): array { return $this->handler; }

    public function match(string $method, string $path): ?array
    {
        if (!in_array($method, $this->methods, true)) {
            return null;
        }
        if (!preg_match($this->compile(), $path, $m)) {
            return null;
        }
        return array_intersect_key($m, array_flip($this->params));
    }

    private function compile(): string
    {
        return $this->regex ??= '#^' . preg_replace_callback(
            '/\{(\w+)(?::([^}]+))?\}/',
            function (array $m): string {
                $this->params[] = $m[1];
                return '(?P<' . $m[1] . '>' . ($m[2] ?? '[^/]+') . ')';
            },
            $this->pattern
        ) . '$#';
    }
}
