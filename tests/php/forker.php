<?php
// A script that forks: the child is the worker's, not the server's.
$pid = pcntl_fork();
if ($pid === 0) {
    exit(0);
}
pcntl_waitpid($pid, $status);
echo "parent ", getmypid(), " reaped ", $pid, " status ", pcntl_wexitstatus($status);
