"""WordPress from Debian's `wordpress` package, unmodified, under Isola with a private
MariaDB: the web installer, login, pretty permalinks, a media upload, a post with the
image, the post at its permalink, wp-admin pages, WordPress's own cron through Isola, logout.

Debian's WordPress reads its configuration from /etc/wordpress/config-$WORDPRESS_CONFIG.php
and keeps wp-content in /var/lib/wordpress (Apache: `Alias /wp-content`); Isola gets
`WORDPRESS_CONFIG` through `[php] env` and the alias through `[[server.alias]]`. A private
copy of wp-content is used so that the system's is left alone.
"""
import json
import shutil
import signal
import time
from pathlib import Path

import subprocess

from lib import ARTIFACTS, ROOT, Client, Failure, Isola, MariaDB, check, find, log, png

CONFIG_NAME = "isolae2e"
CONFIG_FILE = Path(f"/etc/wordpress/config-{CONFIG_NAME}.php")

ISOLA_TOML = """
[server]
docroot = "/usr/share/wordpress"
front_controller = "index.php"
no_exec = ["wp-content/uploads/"]
# Debian's WordPress links some of its files to shared copies (/usr/share/javascript).
follow_symlinks_outside = true
max_body_size = "64M"

[[server.alias]]
path = "/wp-content"
dir = "@CONTENT@"

[pool]
max_children = 3

[php]
env = { WORDPRESS_CONFIG = "isolae2e" }
ini = { upload_max_filesize = "64M", post_max_size = "64M" }

[log]
level = "warn"
"""


def write_wp_config(db_sock, content, disable_wp_cron=False):
    CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
    extra = "define('DISABLE_WP_CRON', true);\n" if disable_wp_cron else ""
    CONFIG_FILE.write_text(f"""<?php
// Isola end-to-end suite: removed when the suite ends.
{extra}define('DB_NAME', 'wordpress');
define('DB_USER', 'root');
define('DB_PASSWORD', '');
define('DB_HOST', 'localhost:{db_sock}');
define('WP_CONTENT_DIR', '{content}');
define('FS_METHOD', 'direct');
define('WP_DEBUG', false);
$table_prefix = 'wp_';
""")


def run(work: Path):
    content = work / "wp-content"
    # A private wp-content laid out as Debian's (themes and plugins link to the package).
    shutil.copytree("/var/lib/wordpress/wp-content", content, symlinks=True)
    (content / "uploads").mkdir(exist_ok=True)
    db = MariaDB(work)
    isola = None
    try:
        # MariaDB's root over the socket authenticates by the process's user (unix_socket):
        # PHP runs as root here, like the suite.
        db.sql("CREATE DATABASE wordpress")
        write_wp_config(db.sock, content)
        isola = Isola(work, ISOLA_TOML.replace("@CONTENT@", str(content)), "wordpress")
        client = flow(isola)
        log("wordpress: DISABLE_WP_CRON and an Isola schedule for wp-cron.php (reload)")
        write_wp_config(db.sock, content, disable_wp_cron=True)
        isola.config.write_text(isola.config.read_text() + SCHEDULE)
        isola.proc.send_signal(signal.SIGHUP)
        scheduled_post(isola, client)
        isola.stop()
        isola = None
    finally:
        if isola:
            try:
                isola.stop()
            except Failure:
                pass
        db.stop()
        CONFIG_FILE.unlink(missing_ok=True)


SCHEDULE = """
[[schedule]]
name = "wordpress cron"
url = "/wp-cron.php"
every = "2s"
"""


def scheduled_post(isola: Isola, c: Client):
    """A post scheduled ahead is published by WordPress's cron, run by the schedule. WordPress
    only keeps a post "future" when its date is at least a minute away."""
    page = c.get("/wp-admin/post-new.php").text
    nonce = find(r'createNonceMiddleware\(\s*"([0-9a-f]+)"', page, "REST nonce")
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 62))
    body = json.dumps({"title": "Published by the schedule", "status": "future", "date_gmt": when,
                       "content": "<p>Scheduled.</p>"})
    r = c.post("/wp-json/wp/v2/posts", body.encode(), content_type="application/json",
               headers={"X-WP-Nonce": nonce})
    check(r.status == 201, f"future post: {r.status} {r.text[:300]}")
    check(r.json()["status"] == "future", f"future post status: {r.json()['status']}")
    post = r.json()["id"]
    deadline = time.monotonic() + 100
    while True:
        r = c.get(f"/wp-json/wp/v2/posts/{post}?context=edit", headers={"X-WP-Nonce": nonce})
        if r.json().get("status") == "publish":
            break
        check(time.monotonic() < deadline, "the scheduled post was never published")
        time.sleep(1)
    log_text = isola.access_log()
    check('"GET /wp-cron.php HTTP/1.1" 200' in log_text and "Isola (schedule)" in log_text,
          "no scheduled wp-cron.php run in the access log")


def flow(isola: Isola) -> Client:
    c = Client(isola.base)
    log("wordpress: web installer")
    r = c.get("/wp-admin/install.php")
    check(r.status == 200 and "install" in r.text.lower(), f"installer page: {r.status} {r.text[:300]}")
    password = "Isola-e2e-pass-1234"
    r = c.post("/wp-admin/install.php?step=2", {
        "weblog_title": "Isola e2e", "user_name": "admin", "admin_password": password,
        "admin_password2": password, "pw_weak": "1", "admin_email": "admin@example.com",
        "blog_public": "0", "Submit": "Install WordPress", "language": "",
    })
    check(r.status == 200 and "Success!" in r.text, f"install: {r.status} {r.text[:500]}")

    log("wordpress: log in")
    c.get("/wp-login.php")
    r = c.post("/wp-login.php", {"log": "admin", "pwd": password, "rememberme": "forever",
                                 "wp-submit": "Log In", "redirect_to": f"{isola.base}/wp-admin/",
                                 "testcookie": "1"})
    check(r.status == 200 and "Dashboard" in r.text, f"login: {r.status} {r.url} {r.text[:300]}")

    log("wordpress: pretty permalinks")
    page = c.get("/wp-admin/options-permalink.php").text
    nonce = find(r'name="_wpnonce" value="([0-9a-f]+)"', page, "permalink nonce")
    r = c.post("/wp-admin/options-permalink.php", {
        "_wpnonce": nonce, "_wp_http_referer": "/wp-admin/options-permalink.php",
        "selection": "/%postname%/", "permalink_structure": "/%postname%/",
        "category_base": "", "tag_base": "", "submit": "Save Changes"})
    check(r.status == 200 and "Permalink structure updated" in r.text, f"permalinks: {r.status}")

    log("wordpress: upload an image (multipart)")
    image = png(64, 48, (200, 30, 60))
    page = c.get("/wp-admin/media-new.php?browser-uploader").text
    nonce = find(r'name="_wpnonce" value="([0-9a-f]+)"', page, "media nonce")
    r = c.post_multipart("/wp-admin/media-new.php", {
        "post_id": "0", "_wpnonce": nonce, "_wp_http_referer": "/wp-admin/media-new.php",
        "html-upload": "Upload"}, {"async-upload": ("isola-red.png", "image/png", image)})
    check(r.status == 200, f"upload: {r.status} {r.text[:300]}")
    media = c.get("/wp-json/wp/v2/media").json()
    check(isinstance(media, list) and media, f"media list: {media}")
    src = media[0]["source_url"]
    check("/wp-content/uploads/" in src, f"image URL: {src}")

    log("wordpress: create a post with the image (REST API, as the block editor does)")
    page = c.get("/wp-admin/post-new.php").text
    rest_nonce = find(r'createNonceMiddleware\(\s*"([0-9a-f]+)"', page, "REST nonce")
    body = ('{"title":"Hello from Isola","status":"publish",'
            f'"content":"<p>Served by Isola.</p><img src=\\"{src}\\" alt=\\"red\\"/>"}}')
    r = c.post("/wp-json/wp/v2/posts", body.encode(), content_type="application/json",
               headers={"X-WP-Nonce": rest_nonce})
    check(r.status == 201, f"create post: {r.status} {r.text[:500]}")
    link = r.json()["link"]
    check(link.endswith("/hello-from-isola/"), f"permalink: {link}")

    log("wordpress: the post at its permalink, and its image as a static file")
    anon = Client(isola.base)
    r = anon.get(link.replace(isola.base, ""))
    check(r.status == 200 and "Hello from Isola" in r.text and src in r.text,
          f"post page: {r.status} {r.text[:300]}")
    r = anon.get(src.replace(isola.base, ""))
    check(r.status == 200 and r.body == image, f"image: {r.status} {len(r.body)} bytes")
    check(r.header("Content-Type") == "image/png", f"image type: {r.header('Content-Type')}")
    r = anon.get("/no-such-page-isola/")
    check(r.status == 404 and "Isola e2e" in r.text, f"WordPress 404 page: {r.status}")

    log("wordpress: wp-admin pages")
    for page in ("/wp-admin/", "/wp-admin/edit.php", "/wp-admin/upload.php",
                 "/wp-admin/options-general.php", "/wp-admin/themes.php", "/wp-admin/plugins.php",
                 "/wp-admin/profile.php", "/wp-admin/site-health.php"):
        r = c.get(page)
        check(r.status == 200 and "wp-admin" in r.text and "Fatal error" not in r.text,
              f"{page}: {r.status} {r.text[:200]}")

    log("wordpress: its own cron, spawned through Isola")
    # Page views spawn wp-cron.php as a loopback request when events are due; the access log
    # shows it arriving from WordPress itself.
    deadline = time.monotonic() + 30
    while "wp-cron.php?doing_wp_cron" not in isola.access_log():
        check(time.monotonic() < deadline, "WordPress never spawned wp-cron.php through Isola")
        anon.get("/")
        time.sleep(0.5)
    r = anon.get("/wp-cron.php")
    check(r.status == 200, f"wp-cron.php: {r.status}")

    log("wordpress: headless Chromium: log in, write and publish a post, view it")
    browser(isola, password)

    log("wordpress: log out")
    page = c.get("/wp-admin/").text
    nonce = find(r'wp-login\.php\?action=logout(?:&amp;|&#038;|&)_wpnonce=([0-9a-f]+)', page, "logout link")
    r = c.get(f"/wp-login.php?action=logout&_wpnonce={nonce}")
    check(r.status == 200 and "loggedout" in r.url, f"logout: {r.status} {r.url}")
    r = c.get("/wp-admin/", follow=False)
    check(r.status == 302 and "wp-login.php" in (r.header("Location") or ""), f"after logout: {r.status}")
    c.get("/wp-login.php")
    r = c.post("/wp-login.php", {"log": "admin", "pwd": password, "wp-submit": "Log In",
                                 "redirect_to": f"{isola.base}/wp-admin/", "testcookie": "1"})
    check(r.status == 200 and "Dashboard" in r.text, "log in again")
    return c


def browser(isola: Isola, password: str):
    e2e = ROOT / "e2e"
    r = subprocess.run(["node", str(e2e / "browser.mjs"), isola.base, "admin", password, str(ARTIFACTS)],
                       cwd=e2e, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise Failure(f"browser flow:\n{r.stdout}{r.stderr}")
