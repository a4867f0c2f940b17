<?php
// The example site's front controller: every path that is not a file lands here.
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
$visits = (int)($_COOKIE['visits'] ?? 0) + 1;
setcookie('visits', (string)$visits, ['httponly' => true, 'samesite' => 'Lax']);
$name = trim($_POST['name'] ?? '');
?><!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Isola example</title>
  <link rel="stylesheet" href="/style.css">
</head>
<body>
  <h1>Hello from PHP <?= PHP_VERSION ?></h1>
  <p>This page ran in worker process <strong><?= getmypid() ?></strong>
     (request <code><?= htmlspecialchars($_SERVER['ISOLA_REQUEST_ID'] ?? '') ?></code>).
     Reload: another worker may answer; each one is a separate, isolated process.</p>
  <p>You asked for <code><?= htmlspecialchars($path) ?></code>; visit number <?= $visits ?> (a cookie).</p>
  <?php if ($name !== ''): ?>
    <p class="greeting">Nice to meet you, <?= htmlspecialchars($name) ?>.</p>
  <?php endif; ?>
  <form method="post" action="/">
    <label>Your name <input name="name" autocomplete="off"></label>
    <button>Send</button>
  </form>
  <ul>
    <li><a href="/info.php">info.php</a>: the CGI environment PHP sees</li>
    <li><a href="/crash.php">crash.php</a>: a worker that dies mid-request (502 for that request only)</li>
    <li><a href="/any/pretty/url">/any/pretty/url</a>: handled by this front controller</li>
  </ul>
</body>
</html>
