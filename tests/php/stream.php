<?php
// Three chunks, 400 ms apart, each flushed.
while (ob_get_level()) { ob_end_flush(); }
for ($i = 0; $i < 3; $i++) {
    echo "chunk $i\n", str_repeat(' ', 16), "\n";
    flush();
    if ($i < 2) usleep(400000);
}
