<?php
// Works for a while before its first output, then leaves a trace: proves a request whose
// client hung up before any answer still ran to its end.
usleep((int) ($_GET['ms'] ?? 500) * 1000);
file_put_contents(__DIR__ . '/ran-' . preg_replace('/[^a-z0-9]/', '', $_GET['tag'] ?? 'x'), 'ran');
echo "done";
