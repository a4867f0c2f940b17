"""phpMyAdmin from Debian's `phpmyadmin` package, served unmodified from /usr/share/phpmyadmin
at /phpmyadmin (Debian's Apache `Alias`), against a private MariaDB. It stresses what the
other two do not: cookie sessions with tokens on every request, a large form (a 2 MiB SQL
statement: the request body goes through Isola's on-disk spool), and file downloads (SQL
and gzip exports with Content-Disposition).

Debian's phpMyAdmin includes /etc/phpmyadmin/conf.d/*.php last; the suite drops a file there
that points server 1 at its own MariaDB socket, and removes it at the end.
"""
import gzip
import json
from pathlib import Path

from lib import Client, Isola, MariaDB, check, find, log

CONF = Path("/etc/phpmyadmin/conf.d/isola-e2e.php")

ISOLA_TOML = """
[server]
docroot = "@ROOT@"
front_controller = ""
max_body_size = "16M"
# Debian's apache.conf denies these two folders.
deny = ["/phpmyadmin/templates/**", "/phpmyadmin/libraries/**", "/phpmyadmin/setup/lib/**"]

[[server.alias]]
path = "/phpmyadmin"
dir = "/usr/share/phpmyadmin"

[pool]
max_children = 2

[php]
ini = { upload_max_filesize = "16M", post_max_size = "16M", "session.save_path" = "@SESSIONS@" }

[log]
level = "warn"
"""


def run(work: Path):
    db = MariaDB(work)
    isola = None
    try:
        db.sql("CREATE USER 'pma'@'localhost' IDENTIFIED BY 'pma-pass-7'; "
               "GRANT ALL ON *.* TO 'pma'@'localhost'; CREATE DATABASE e2e; "
               "CREATE TABLE e2e.notes (id INT PRIMARY KEY AUTO_INCREMENT, body LONGTEXT)")
        CONF.parent.mkdir(parents=True, exist_ok=True)
        CONF.write_text(
            "<?php\n// Isola end-to-end suite: removed when the suite ends.\n"
            "$cfg['Servers'][1]['auth_type'] = 'cookie';\n"
            "$cfg['Servers'][1]['host'] = 'localhost';\n"
            "$cfg['Servers'][1]['connect_type'] = 'socket';\n"
            f"$cfg['Servers'][1]['socket'] = '{db.sock}';\n"
            "$cfg['blowfish_secret'] = 'isola-e2e-0123456789abcdef0123456789abcdef';\n"
        )
        root = work / "www"
        root.mkdir()
        (root / "index.html").write_text("isola e2e\n")
        sessions = work / "sessions"
        sessions.mkdir()
        isola = Isola(work, ISOLA_TOML.replace("@ROOT@", str(root)).replace("@SESSIONS@", str(sessions)),
                      "phpmyadmin")
        flow(isola, db)
        isola.stop()
        isola = None
    finally:
        if isola:
            try:
                isola.stop()
            except Exception:  # noqa: BLE001
                pass
        db.stop()
        CONF.unlink(missing_ok=True)


def token_of(html):
    return find(r'name="token" value="([^"]+)"', html, "token")


def flow(isola: Isola, db: MariaDB):
    c = Client(isola.base)
    log("phpmyadmin: login form, then log in (cookie session)")
    r = c.get("/phpmyadmin/")
    check(r.status == 200 and "pma_username" in r.text, f"login form: {r.status} {r.text[:300]}")
    r = c.post("/phpmyadmin/index.php?route=/", {
        "pma_username": "pma", "pma_password": "pma-pass-7", "server": "1",
        "token": token_of(r.text), "set_session": find(r'name="set_session" value="([^"]+)"', r.text, "set_session")})
    check(r.status == 200 and "logout" in r.text.lower() and "pma_username" not in r.text,
          f"login: {r.status} {r.text[:300]}")
    token = token_of(r.text)
    for path in ("/phpmyadmin/templates/login/form.twig", "/phpmyadmin/libraries/config.default.php"):
        check(c.get(path).status == 404, f"{path} must be denied")

    log("phpmyadmin: a 2 MiB SQL statement through a form")
    big = "isola" * (2 * 1024 * 1024 // 5)
    r = c.post("/phpmyadmin/index.php?route=/sql", {
        "db": "e2e", "sql_query": f"INSERT INTO notes (body) VALUES ('{big}')",
        "token": token, "ajax_request": "true", "server": "1"})
    check(r.status == 200, f"big insert: {r.status}")
    reply = r.json()
    check(reply.get("success") is True, f"big insert reply: {json.dumps(reply)[:300]}")
    check(db.sql("SELECT LENGTH(body) FROM e2e.notes").strip() == str(len(big)),
          "the 2 MiB value did not arrive whole")

    log("phpmyadmin: browse the table")
    r = c.get(f"/phpmyadmin/index.php?route=/sql&db=e2e&table=notes&pos=0&token={token}")
    check(r.status == 200 and "notes" in r.text, f"browse: {r.status}")

    log("phpmyadmin: export downloads (SQL, then gzip)")
    export = {"db": "e2e", "export_type": "database", "export_method": "quick", "what": "sql",
              "output_format": "sendit", "filename_template": "@DATABASE@", "charset": "utf-8",
              "compression": "none", "structure_or_data_forced": "0",
              "sql_structure_or_data": "structure_and_data", "sql_create_table": "something",
              "sql_type": "INSERT", "sql_insert_syntax": "both", "sql_max_query_size": "50000",
              "table_select[]": "notes", "table_structure[]": "notes", "table_data[]": "notes",
              "token": token, "server": "1"}
    r = c.post("/phpmyadmin/index.php?route=/export", export)
    disposition = r.header("Content-Disposition") or ""
    check(r.status == 200 and "attachment" in disposition and "e2e.sql" in disposition,
          f"export: {r.status} {disposition} {r.text[:300]}")
    check("CREATE TABLE notes" in r.text and big[:1000] in r.text,
          f"export content ({len(r.body)} bytes, {r.header('Content-Type')}): {r.text[:1500]}")
    export["compression"] = "gzip"
    r = c.post("/phpmyadmin/index.php?route=/export", export)
    disposition = r.header("Content-Disposition") or ""
    check(r.status == 200 and "e2e.sql.gz" in disposition, f"gzip export: {disposition}")
    check(r.header("Content-Encoding") is None, "a gzip download must not be re-encoded")
    check("CREATE TABLE notes" in gzip.decompress(r.body).decode(), "gzip export content")

    log("phpmyadmin: log out")
    r = c.post("/phpmyadmin/index.php?route=/logout", {"token": token, "server": "1"})
    check(r.status == 200 and "pma_username" in r.text, f"logout: {r.status}")
    r = c.get("/phpmyadmin/index.php?route=/database/structure&db=e2e")
    check("pma_username" in r.text, "still logged in after logout")
