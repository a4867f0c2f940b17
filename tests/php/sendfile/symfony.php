<?php
// A download as Symfony (and Laravel's response()->download()) sends it: BinaryFileResponse,
// trusting the X-Sendfile-Type request header the server sets.
require 'Symfony/Component/HttpFoundation/autoload.php';

use Symfony\Component\HttpFoundation\BinaryFileResponse;
use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\ResponseHeaderBag;

BinaryFileResponse::trustXSendfileTypeHeader();
$request = Request::createFromGlobals();
$r = new BinaryFileResponse($request->query->get('path'));
$r->setContentDisposition(ResponseHeaderBag::DISPOSITION_ATTACHMENT, 'report.txt');
$r->prepare($request);
$r->send();
