<?php

declare(strict_types=1);

namespace Bench\Boot\Contracts;

/**
 * Reacts to one event.
 */
interface ListenerInterface
{
    public function handle(object $event): void;

    /** @return list<class-string> */
    public static function subscribedTo(): array;
}
