<?php
// INCR reads and writes inside the store, in one step no other client can split.
require __DIR__ . '/../connect.php';
$r = store();
admin($r, 'pageviews:incr');

echo $r->incr('pageviews:incr'), "\n";
