<?php
// Read, add one, write back. Two requests that read the same value both write value + 1,
// and one view is lost.
require __DIR__ . '/../connect.php';
$r = store();
admin($r, 'pageviews:naive');

// No pause is needed to lose views: while this worker waits for the GET's reply, the
// other workers read the same value.
$views = (int) $r->get('pageviews:naive');
$r->set('pageviews:naive', $views + 1);
echo $views + 1, "\n";
