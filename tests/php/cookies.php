<?php
setcookie('a', '1');
setcookie('b', '2', ['path' => '/', 'httponly' => true]);
echo "cookies set";
