<?php
// Burns CPU until PHP's own max_execution_time stops it (or `sec` seconds pass).
set_time_limit((int)($_GET['limit'] ?? 1));
$end = microtime(true) + (float)($_GET['sec'] ?? 5);
$n = 0;
while (microtime(true) < $end) {
    $n++;
}
echo "done $n ", getmypid();
