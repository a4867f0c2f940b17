<?php
// Leaves a trace that this script ran: proves whether a request reached a worker.
file_put_contents(__DIR__ . '/ran-' . preg_replace('/[^a-z0-9]/', '', $_GET['tag'] ?? 'x'), 'ran');
echo "touched";
