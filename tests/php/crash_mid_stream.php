<?php
// A streamed response whose worker dies midway: the client must see it cut off, never a
// complete-looking response.
while (ob_get_level()) { ob_end_flush(); }
echo str_repeat("x", 1000), "\nFIRST-PART\n";
flush();
usleep(200000);
posix_kill(posix_getpid(), SIGSEGV);
