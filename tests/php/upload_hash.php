<?php
// Streams php://input and reports its length and hash, without holding it in memory.
$in = fopen('php://input', 'rb');
$ctx = hash_init('sha256');
$len = 0;
while (!feof($in)) { $b = fread($in, 1 << 16); if ($b === false) break; $len += strlen($b); hash_update($ctx, $b); }
echo $len, " ", hash_final($ctx);
