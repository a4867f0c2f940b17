<?php
// 103 Early Hints (native backend): the Link fields leave at once, the page follows later.
header('Link: </style.css>; rel=preload; as=style');
header('Link: </app.js>; rel=preload; as=script', false);
if (isset($_GET['evil'])) {
    // header() refuses a value with a line break (a warning, and nothing is set).
    @header("Link: </evil.css>\r\nX-Evil: injected", false);
}
$first = function_exists('headers_send') ? headers_send(103) : -1;
usleep((int)($_GET['nap'] ?? 0) * 1000);
header('X-Final: yes');
// After the final head has left, a hint is refused.
echo "hinted=$first ";
flush();
echo 'late=', function_exists('headers_send') ? headers_send(103) : -1, "\n";
