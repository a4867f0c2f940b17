<?php
// Runs once per job of the `pageviews` queue ([[queue]] in isola.toml), never two at once
// (concurrency = 1): the same GET-then-SET as naive.php, now correct. The script lives
// outside public/, so no client can request it.
require __DIR__ . '/../connect.php';
$r = store();
$n = (int) $r->get('pageviews:queue');
$r->set('pageviews:queue', $n + 1);
