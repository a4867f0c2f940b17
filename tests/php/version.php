<?php
echo "version=", getenv('APP_VERSION') ?: 'none', " pid=", getmypid();
