<?php
// No Content-Type at all: the server must not invent one.
ini_set('default_mimetype', '');
echo "untyped";
