<?php

declare(strict_types=1);

namespace Bench\Boot\View;

/**
 * Renders the small inline templates of the controllers ("{{ name }}" placeholders).
 */
final class Renderer
{
    private const TEMPLATES = [
        'layout' => "<!doctype html><title>{{ title }} - {{ app }}</title>\n<h1>{{ title }}</h1>\n{{ content|raw }}\n",
        'home' => "<p>Booted {{ classes }} classes, {{ services }} services.</p>",
        'post' => "<article><h2>{{ slug }}</h2><p>{{ summary }}</p></article>",
    ];

    public function __construct(private readonly Escaper $escaper, private readonly array $globals = [])
    {
    }

    public function render(string $template, array $vars = []): string
    {
        $content = $this->fill(self::TEMPLATES[$template] ?? throw new \OutOfBoundsException($template), $vars);
        return $this->fill(self::TEMPLATES['layout'], $vars + ['content' => $content]);
    }

    private function fill(string $source, array $vars): string
    {
        $vars += $this->globals;
        return preg_replace_callback('/\{\{\s*(\w+)(\|raw)?\s*\}\}/', function (array $m) use ($vars): string {
            $value = $vars[$m[1]] ?? '';
            return isset($m[2]) && $m[2] !== '' ? (string) $value : $this->escaper->html($value);
        }, $source);
    }
}
