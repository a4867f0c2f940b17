<?php
// The Symfony app classically: the kernel is built for every request.
use Symfony\Component\HttpFoundation\Request;

$kernel = require __DIR__ . '/symfony/kernel.php';
$request = Request::create('/blog/hello-from-the-benchmark');
$response = $kernel->handle($request);
$response->send();
$kernel->terminate($request, $response);
