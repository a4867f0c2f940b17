<?php
echo "hello from ", $_SERVER['SCRIPT_NAME'], " path_info=", $_SERVER['PATH_INFO'] ?? '';
