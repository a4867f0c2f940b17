<?php

declare(strict_types=1);

namespace Bench\Boot\Contracts;

/**
 * An outgoing HTTP response.
 */
interface ResponseInterface
{
    public function status(): int;

    public function body(): string;

    public function withHeader(string $name, string $value): static;

    /** @return array<string, string> */
    public function headers(): array;

    public function send(): void;
}
