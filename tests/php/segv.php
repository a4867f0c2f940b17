<?php
echo "before crash";
posix_kill(posix_getpid(), SIGSEGV);
