<?php
// 8 MiB of deterministic bytes.
header('Content-Type: application/octet-stream');
$block = '';
for ($i = 0; $i < 1024; $i++) { $block .= chr($i % 251); }
for ($i = 0; $i < 8192; $i++) { echo $block; }
