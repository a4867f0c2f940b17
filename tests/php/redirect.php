<?php
if (isset($_GET['permanent'])) { header('Location: /target', true, 301); exit; }
header('Location: /elsewhere?x=1');
