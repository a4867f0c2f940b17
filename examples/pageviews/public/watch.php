<?php
// Optimistic: WATCH the key, read it, and write in MULTI/EXEC. EXEC fails if any other
// client wrote the key after the WATCH; then read again and retry.
require __DIR__ . '/../connect.php';
$r = store();
admin($r, 'pageviews:watch');

for ($attempt = 1; ; $attempt++) {
    $r->watch('pageviews:watch');
    $views = (int) $r->get('pageviews:watch');
    if ($r->multi()->set('pageviews:watch', $views + 1)->exec() !== false) {
        break;
    }
    // Lost the race: back off a little, more after each loss, so retries spread out.
    usleep(random_int(0, 500 * min($attempt, 10)));
}
echo $views + 1, "\n";
