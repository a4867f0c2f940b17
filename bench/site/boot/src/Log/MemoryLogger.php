<?php

declare(strict_types=1);

namespace Bench\Boot\Log;

/**
 * Keeps log lines in memory (a real application would write a file).
 */
final class MemoryLogger extends AbstractLogger
{
    private const MAX = 100;

    /** @var list<string> */
    private array $lines = [];

    protected function write(string $level, string $line): void
    {
        if (count($this->lines) >= self::MAX) {
            array_shift($this->lines);
        }
        $this->lines[] = sprintf('[%s] %s: %s', date('H:i:s'), strtoupper($level), $line);
    }

    public function records(): array
    {
        return $this->lines;
    }
}
