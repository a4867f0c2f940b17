<?php
// Message passing: the request only records that a view happened, as a job on Isola's
// `pageviews` queue; jobs/count-view.php counts them one at a time, so its plain
// read-then-write is never raced.
require __DIR__ . '/../connect.php';
$r = store();
// Isola keeps its queues in a database of their own (ISOLA_DB), apart from the app's keys.
$q = store();
$q->select((int) getenv('ISOLA_DB'));
if (isset($_GET['reset'])) {
    $q->del('isola:queue:pageviews');   // views left over from an interrupted run
}
admin($r, 'pageviews:queue');
if (isset($_GET['pending'])) {
    // Views recorded but not counted yet: waiting, or being counted right now.
    $processing = 0;
    foreach ($q->sMembers('isola:nodes:pageviews') ?: [] as $node) {
        $processing += $q->lLen("isola:processing:pageviews:$node");
    }
    exit(($q->lLen('isola:queue:pageviews') + $processing) . "\n");
}

$q->rPush('isola:queue:pageviews', (string) time());
echo "queued\n";
