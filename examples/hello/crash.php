<?php
// Kills its own worker process. Only this request fails (502); the worker is replaced and
// the next request is served normally.
echo "about to crash\n";
posix_kill(posix_getpid(), SIGSEGV);
