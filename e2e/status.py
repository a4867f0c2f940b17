"""Isola's own live status page in headless Chromium, under light load: the server runs the
e2e PHP site below with the admin listener on; a thread sends requests (2xx, some 404s)
the whole time the browser watches the page (e2e/status.mjs checks the plots redraw, the
freshness text moves, and no console error or CSP violation appears)."""
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from lib import ARTIFACTS, Failure, Isola, check, free_port, log

ISOLA_TOML = """
[server]
docroot = "@ROOT@"

[pool]
max_children = 3

[admin]
listen = "127.0.0.1:@ADMIN@"

[log]
level = "warn"
access = false
"""


# A path built to break out of an HTML attribute; `<` and `>` never reach a request target
# (the server answers 400), quotes do. The page must show it as text.
HOSTILE = "/index.php/\"onmouseover=\"alert(1)'?slow=1"


def load(base, stop, hostile=False):
    """A request every 20 ms: mostly a script (2xx), some missing pages (404); or, with
    `hostile`, the slow hostile request again and again, so a busy row shows it (on its own
    thread: the steady load must not pause while it runs)."""
    n = 0
    while not stop.is_set():
        path = "/missing.php" if n % 5 == 4 else f"/index.php?n={n}"
        if hostile:
            path = HOSTILE
        try:
            urllib.request.urlopen(base + path, timeout=5).read()
        except urllib.error.HTTPError:
            pass
        except OSError:
            time.sleep(0.1)
        n += 1
        time.sleep(0.02)


def run(work: Path):
    root = work / "site"
    root.mkdir()
    (root / "index.php").write_text(
        "<?php usleep(isset($_GET['slow']) ? 1500000 : random_int(1000, 20000));"
        " echo 'ok ', $_GET['n'] ?? '';\n")
    admin_port = free_port()
    isola = Isola(work, ISOLA_TOML.replace("@ROOT@", str(root)).replace("@ADMIN@", str(admin_port)),
                  "status")
    stop = threading.Event()
    loaders = [threading.Thread(target=load, args=(isola.base, stop, h), daemon=True)
               for h in (False, True)]
    try:
        for t in loaders:
            t.start()
        admin = f"http://127.0.0.1:{admin_port}"
        log(f"status: browser on {admin}/status under load")
        e2e = Path(__file__).resolve().parent
        r = subprocess.run(["node", str(e2e / "status.mjs"), admin, str(ARTIFACTS)],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise Failure(f"status page in Chromium:\n{r.stdout}{r.stderr}")
        log(r.stdout.strip())
        check((ARTIFACTS / "status.png").exists(), "no status.png screenshot")
    finally:
        stop.set()
        for t in loaders:
            t.join(10)
        isola.stop()
