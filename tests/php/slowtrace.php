<?php
// A slow request with a known stack, for the slowlog backtrace: keep the line numbers.
class Waiter
{
    public function wait(int $s): int
    {
        return $this->nap($s);
    }

    private function nap(int $s): int
    {
        return sleep($s);
    }

    public static function run(int $s): int
    {
        return (new Waiter())->wait($s);
    }
}

function outer(int $s): int
{
    return Waiter::run($s);
}

$t = microtime(true);
$left = outer((int) ($_GET['s'] ?? 2));
// sleep() returns what is left when a signal cuts it short: taking the stack must not.
printf("left=%d slept=%s\n", $left, microtime(true) - $t >= (int) ($_GET['s'] ?? 2) ? 'full' : 'short');
