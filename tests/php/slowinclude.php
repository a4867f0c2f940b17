<?php
require __DIR__ . "/slowinclude.inc";
