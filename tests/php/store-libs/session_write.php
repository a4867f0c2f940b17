<?php
require __DIR__ . '/store.php';
session_start();
$_SESSION['note'] = $_GET['note'] ?? '';
isola_json(['pid' => getmypid(), 'id' => session_id()]);
