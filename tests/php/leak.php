<?php
// Grows this worker's memory: many small allocations leave the engine's allocator holding
// chunks after the request, as a leaking extension or a big import would.
$keep = [];
$mb = (int)($_GET['mb'] ?? 64);
for ($i = 0; $i < $mb * 1024 * 8; $i++) { $keep[] = str_repeat('x', 100) . $i; }
echo "allocated ", count($keep), " pid ", getmypid();
