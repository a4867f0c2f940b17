<?php
// Overload page: holds its worker 10 ms, so N workers serve at most N * 100 requests/s.
usleep(10000);
echo "slept 10ms\n";
