<?php
// Unusual things scripts do with headers; ?case= picks one.
switch ($_GET['case'] ?? '') {
    case 'status-line':   header('HTTP/1.1 404 Not Found'); echo 'gone'; break;
    case 'status-header': header('Status: 451 Unavailable For Legal Reasons'); echo 'legal'; break;
    case 'te-chunked':    header('Transfer-Encoding: chunked'); echo 'framed by the server'; break;
    case 'cl-short':      header('Content-Length: 3'); echo 'abcdefgh'; break;
    case 'cl-long':       header('Content-Length: 100'); echo 'only this'; break;
    case 'no-content':    http_response_code(204); break;
    case 'not-modified':  http_response_code(304); header('ETag: "x"'); break;
    case 'connection':    header('Connection: keep-alive, X-Foo'); header('Keep-Alive: timeout=99'); header('X-Foo: hop'); echo 'hop'; break;
    case 'multi':         header('X-Multi: a'); header('X-Multi: b', false); echo 'multi'; break;
    case 'big-header':    header('X-Big: ' . str_repeat('h', 20000)); echo 'big'; break;
    case 'huge-header':   header('X-Huge: ' . str_repeat('h', 200000)); echo 'huge'; break;
    default: echo 'cases: status-line status-header te-chunked cl-short cl-long no-content not-modified connection multi big-header huge-header';
}
