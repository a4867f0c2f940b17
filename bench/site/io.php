<?php
// I/O-bound page: waits 20 ms (a database or API call) while holding its worker.
usleep(20000);
echo "io done\n";
