<?php

declare(strict_types=1);

namespace Bench\Boot\View;

/**
 * HTML escaping for templates.
 */
final class Escaper
{
    public function __construct(private readonly string $charset = 'UTF-8')
    {
    }

    public function html(mixed $value): string
    {
        return htmlspecialchars((string) $value, ENT_QUOTES | ENT_SUBSTITUTE, $this->charset);
    }

    public function attr(mixed $value): string
    {
        return $this->html($value);
    }

    public function url(string $value): string
    {
        return rawurlencode($value);
    }
}
