<?php

declare(strict_types=1);

namespace Bench\Boot\Log;

use Bench\Boot\Contracts\LoggerInterface;

/**
 * Base logger: level filtering and message interpolation.
 */
abstract class AbstractLogger implements LoggerInterface
{
    protected const LEVELS = ['debug' => 0, 'info' => 1, 'notice' => 2, 'warning' => 3, 'error' => 4];

    public function __construct(protected string $minLevel = 'info')
    {
    }

    abstract protected function write(string $level, string $line): void;

    public function log(string $level, string $message, array $context = []): void
    {
        if ((self::LEVELS[$level] ?? 0) < (self::LEVELS[$this->minLevel] ?? 0)) {
            return;
        }
        $replace = [];
        foreach ($context as $k => $v) {
            $replace['{' . $k . '}'] = is_scalar($v) ? (string) $v : get_debug_type($v);
        }
        $this->write($level, strtr($message, $replace));
    }

    public function info(string $message, array $context = []): void
    {
        $this->log('info', $message, $context);
    }

    public function debug(string $message, array $context = []): void
    {
        $this->log('debug', $message, $context);
    }
}
