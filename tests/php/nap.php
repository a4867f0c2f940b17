<?php
// Waits without using CPU under a 1 s limit: PHP counts CPU time on Linux, as php-fpm does.
set_time_limit(1);
usleep((int)($_GET['ms'] ?? 1500) * 1000);
echo "awake ", getmypid();
