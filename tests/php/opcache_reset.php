<?php
echo opcache_reset() ? "reset " : "no reset ", getmypid();
