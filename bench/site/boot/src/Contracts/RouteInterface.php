<?php

declare(strict_types=1);

namespace Bench\Boot\Contracts;

/**
 * One route: methods, a path pattern and its handler.
 */
interface RouteInterface
{
    public function name(): string;

    /** @return list<string> */
    public function methods(): array;

    public function pattern(): string;

    /** @return array{0: class-string, 1: string} */
    public function handler(): array;

    /** @return array<string, string>|null parameters when the path matches */
    public function match(string $method, string $path): ?array;
}
