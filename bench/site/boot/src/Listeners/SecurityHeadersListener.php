<?php

declare(strict_types=1);

namespace Bench\Boot\Listeners;

use Bench\Boot\Contracts\ListenerInterface;
use Bench\Boot\Events\ResponseReady;

/**
 * Adds the usual security headers to every response.
 */
final class SecurityHeadersListener implements ListenerInterface
{
    private const HEADERS = [
        'X-Content-Type-Options' => 'nosniff',
        'X-Frame-Options' => 'SAMEORIGIN',
        'Referrer-Policy' => 'strict-origin-when-cross-origin',
    ];

    public function __construct(private readonly bool $hsts = false)
    {
    }

    public static function subscribedTo(): array
    {
        return [ResponseReady::class];
    }

    public function handle(object $event): void
    {
        $response = $event->response;
        foreach (self::HEADERS as $name => $value) {
            $response = $response->withHeader($name, $value);
        }
        if ($this->hsts) {
            $response = $response->withHeader('Strict-Transport-Security', 'max-age=31536000');
        }
        $event->replaceResponse($response);
    }
}
