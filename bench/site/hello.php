<?php
// Smallest dynamic page: measures the server's per-request overhead.
echo "Hello, world!\n";
