<?php

declare(strict_types=1);

namespace Bench\Boot\Contracts;

/**
 * PSR-3 flavoured logger.
 */
interface LoggerInterface
{
    public function log(string $level, string $message, array $context = []): void;

    public function info(string $message, array $context = []): void;

    public function debug(string $message, array $context = []): void;

    /** @return list<string> */
    public function records(): array;
}
