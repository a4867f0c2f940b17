"""DokuWiki from Debian's `dokuwiki` package under Isola: log in, create and edit a page,
its history, the search (after DokuWiki's own indexer ran through its web-bug request), a
media upload fetched back, log out.

Debian splits DokuWiki into code (/usr/share/dokuwiki), configuration (/etc/dokuwiki, found
through inc/preload.php) and data (/var/lib/dokuwiki). The suite serves a copy of the code
whose preload.php points at a private configuration and data folder, so the system install
is left alone.
"""
import re
import shutil
import subprocess
import time
from pathlib import Path

from lib import Client, Isola, check, find, log, png

ISOLA_TOML = """
[server]
docroot = "@ROOT@"
front_controller = ""
index = ["doku.php"]
# DokuWiki's own .htaccess files deny these folders to Apache users.
deny = ["/bin/**", "/inc/**", "/vendor/**", "/conf/**", "/data/**", "/install.php"]

[pool]
max_children = 2

[log]
level = "warn"
"""


def prepare(work: Path):
    root = work / "dokuwiki"
    shutil.copytree("/usr/share/dokuwiki", root, symlinks=True)
    conf = work / "conf"
    conf.mkdir()
    for f in Path("/etc/dokuwiki").iterdir():
        if f.is_file():
            shutil.copy(f, conf / f.name)
    data = work / "data"
    shutil.copytree("/var/lib/dokuwiki/data", data)
    (conf / "local.php").write_text(
        "<?php\n"
        f"$conf['savedir'] = '{data}';\n"
        "$conf['title'] = 'Isola e2e wiki';\n"
        "$conf['useacl'] = 1;\n"
        "$conf['superuser'] = '@admin';\n"
    )
    hashed = subprocess.run(["php", "-r", "echo password_hash('wiki-pass-42', PASSWORD_BCRYPT);"],
                            capture_output=True, text=True, check=True).stdout
    (conf / "users.auth.php").write_text(f"editor:{hashed}:Wiki Editor:editor@example.com:admin,user\n")
    (conf / "acl.auth.php").write_text("*\t@ALL\t1\n*\t@user\t16\n")
    (root / "inc" / "preload.php").write_text(
        "<?php\n"
        "// Isola e2e copy: configuration and data live outside the document root.\n"
        f"if (!defined('DOKU_CONF')) define('DOKU_CONF', '{conf}/');\n"
    )
    return root


def hidden_fields(form_html):
    fields = {}
    for m in re.finditer(r'<input[^>]*type="hidden"[^>]*>', form_html):
        tag = m.group(0)
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            fields[name.group(1)] = value.group(1) if value else ""
    return fields


def save_page(c, page, text, summary):
    form = c.get(f"/doku.php?id={page}&do=edit").text
    check('name="wikitext"' in form, f"edit form for {page}: {form[:300]}")
    fields = hidden_fields(form)
    fields.update({"id": page, "wikitext": text, "summary": summary, "do[save]": "Save"})
    r = c.post("/doku.php", fields)
    check(r.status == 200, f"save {page}: {r.status}")
    return r


def run(work: Path):
    root = prepare(work)
    isola = Isola(work, ISOLA_TOML.replace("@ROOT@", str(root)), "dokuwiki")
    try:
        flow(isola)
    finally:
        isola.stop()


def flow(isola: Isola):
    c = Client(isola.base)
    log("dokuwiki: start page and denied folders")
    r = c.get("/")
    check(r.status == 200 and "Isola e2e wiki" in r.text, f"start page: {r.status} {r.text[:300]}")
    for path in ("/conf/users.auth.php", "/inc/init.php", "/data/pages/wiki/syntax.txt", "/bin/indexer.php"):
        check(c.get(path).status == 404, f"{path} must be denied")

    log("dokuwiki: log in")
    form = c.get("/doku.php?id=start&do=login").text
    sectok = find(r'name="sectok" value="([0-9a-f]*)"', form, "login sectok")
    r = c.post("/doku.php", {"id": "start", "do": "login", "sectok": sectok,
                             "u": "editor", "p": "wiki-pass-42"})
    check(r.status == 200 and "do=logout" in r.text, f"login: {r.status} {r.text[:300]}")

    log("dokuwiki: create and edit a page")
    page = "isola:e2e"
    save_page(c, page, "====== Isola page ======\nFirst version with a zanzibarian word.\n", "created")
    # Revisions are named by their second: two saves in one second would be one revision.
    time.sleep(1.1)
    save_page(c, page, "====== Isola page ======\nSecond version with a zanzibarian word.\n", "edited")
    r = c.get(f"/doku.php?id={page}")
    check(r.status == 200 and "Second version" in r.text, f"page view: {r.text[:300]}")

    log("dokuwiki: history")
    r = c.get(f"/doku.php?id={page}&do=revisions")
    check(r.status == 200 and "created" in r.text and "edited" in r.text, "revisions list")

    log("dokuwiki: search (after DokuWiki's indexer ran through Isola)")
    r = c.get(f"/lib/exe/taskrunner.php?id={page}")
    check(r.status == 200, f"taskrunner: {r.status}")
    r = c.get("/doku.php?do=search&q=zanzibarian")
    check(r.status == 200 and "isola:e2e" in r.text, f"search: {r.text[:500]}")

    log("dokuwiki: upload media and fetch it back")
    image = png(32, 32, (10, 120, 200))
    form = c.get("/doku.php?do=media&ns=isola&tab_files=upload").text
    sectok = find(r'name="sectok" value="([0-9a-f]+)"', form, "media sectok")
    r = c.post_multipart("/doku.php?do=media&ns=isola&tab_files=upload", {
        "sectok": sectok, "mediaid": "pic.png"}, {"upload": ("pic.png", "image/png", image)})
    check(r.status == 200, f"media upload: {r.status}")
    r = c.get("/lib/exe/fetch.php?media=isola:pic.png")
    check(r.status == 200 and r.body == image, f"media fetch: {r.status} {len(r.body)} bytes")

    log("dokuwiki: log out")
    page_html = c.get("/doku.php?id=start").text
    sectok = find(r'do=logout&amp;sectok=([0-9a-f]+)', page_html, "logout link")
    c.get(f"/doku.php?id=start&do=logout&sectok={sectok}")
    r = c.get("/doku.php?id=start")
    check("do=login" in r.text and "do=logout" not in r.text, "still logged in after logout")
