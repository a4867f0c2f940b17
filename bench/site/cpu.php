<?php
// CPU-bound page: builds a 1000-element array and JSON-encodes it a few times.
$out = '';
for ($round = 0; $round < 5; $round++) {
    $rows = [];
    for ($i = 0; $i < 1000; $i++) {
        $rows[] = ['id' => $i, 'name' => "item-$round-$i", 'price' => $i * 1.25, 'tags' => ['a', 'b', $i % 7]];
    }
    $out = json_encode($rows);
}
header('Content-Type: application/json');
echo strlen($out), "\n";
