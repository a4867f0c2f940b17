<?php
// Reads without holding the session lock, and stays long enough that concurrent readers
// are served by different workers.
require __DIR__ . '/store.php';
session_start(['read_and_close' => true]);
usleep((int) ($_GET['ms'] ?? 300) * 1000);
isola_json(['pid' => getmypid(), 'note' => $_SESSION['note'] ?? null, 'n' => $_SESSION['n'] ?? null]);
