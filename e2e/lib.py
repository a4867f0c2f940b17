"""Shared pieces of the end-to-end suite: Isola and MariaDB processes, an HTTP client that
keeps cookies, multipart forms, small PNGs, checks."""
import http.client
import http.cookiejar
import json
import os
import re
import signal
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "e2e" / "artifacts"


class Failure(Exception):
    """A check that did not hold."""


def check(cond, what):
    if not cond:
        raise Failure(what)


def log(msg):
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def isola_binary():
    for p in (os.environ.get("ISOLA_BIN"), ROOT / "target/debug/isola", ROOT / "target/release/isola"):
        if p and Path(p).exists():
            return str(p)
    raise Failure("no isola binary: build it first (cargo build)")


class Isola:
    """An `isola serve` with a config written in `workdir`; stdout and stderr go to files."""

    def __init__(self, workdir: Path, config: str, name: str):
        self.dir = workdir
        self.port = free_port()
        self.name = name
        self.config = self.dir / f"{name}.toml"
        self.config.write_text(config.replace("@PORT@", str(self.port)))
        self.out = open(self.dir / f"{name}.stdout", "w+")
        self.err = open(self.dir / f"{name}.stderr", "w+")
        # The embedded store keeps its log here rather than in /var/lib/isola: runs never share
        # or inherit data.
        env = dict(os.environ, STATE_DIRECTORY=str(self.dir / f"{name}.state"))
        self.proc = subprocess.Popen(
            [isola_binary(), "serve", "--config", str(self.config), "--listen", f"127.0.0.1:{self.port}"],
            stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failure(f"isola exited at start: {self.stderr()[-2000:]}")
            self.out.seek(0)
            if "http://" in self.out.read():
                return
            time.sleep(0.05)
        raise Failure("isola did not print its ready line in 30 s")

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def access_log(self):
        self.out.seek(0)
        return self.out.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise Failure("isola did not stop within 40 s of SIGTERM")
        check(self.proc.returncode == 0, f"isola exit status {self.proc.returncode}")
        errors = [l for l in self.stderr().splitlines()
                  if " ERROR " in l or "worker crashed" in l or "panicked" in l]
        check(not errors, "isola logged errors:\n" + "\n".join(errors[:20]))


class MariaDB:
    """A private MariaDB server: its own data folder and socket, no TCP."""

    def __init__(self, workdir: Path):
        self.dir = workdir / "mariadb"
        self.data = self.dir / "data"
        self.sock = self.dir / "mysql.sock"
        self.dir.mkdir(parents=True)
        run(["mariadb-install-db", "--no-defaults", f"--datadir={self.data}", "--user=root",
             "--auth-root-authentication-method=socket", "--skip-test-db"], quiet=True)
        self.err = open(self.dir / "error.log", "w")
        self.proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={self.data}", f"--socket={self.sock}",
             "--skip-networking", "--user=root", f"--pid-file={self.dir / 'mariadb.pid'}",
             "--innodb-buffer-pool-size=32M", "--skip-log-bin"],
            stdout=self.err, stderr=self.err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failure(f"mariadbd exited: {(self.dir / 'error.log').read_text()[-2000:]}")
            if self.sock.exists():
                try:
                    self.sql("SELECT 1")
                    return
                except Failure:
                    pass
            time.sleep(0.2)
        raise Failure("mariadbd did not come up in 60 s")

    def sql(self, statement):
        r = subprocess.run(["mariadb", "--no-defaults", f"--socket={self.sock}", "-uroot", "-N", "-e", statement],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise Failure(f"SQL failed: {statement}: {r.stderr}")
        return r.stdout

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run(argv, quiet=False, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise Failure(f"{' '.join(map(str, argv))} failed ({r.returncode}): {r.stderr[-2000:]}")
    if not quiet and r.stdout:
        print(r.stdout)
    return r.stdout


class Response:
    def __init__(self, status, headers, body, url):
        self.status = status
        self.headers = headers
        self.body = body
        self.url = url

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def header(self, name):
        return self.headers.get(name)

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise Failure(f"not JSON from {self.url} ({self.status}): {self.text[:500]}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Client:
    """A browser-like client: cookies kept, redirects followed (or not, on request)."""

    def __init__(self, base):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.follow = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.stay = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)
        self.ua = "Mozilla/5.0 (X11; Linux x86_64) isola-e2e"

    def request(self, method, path, data=None, headers=None, follow=True, content_type=None):
        url = path if path.startswith("http") else self.base + path
        h = {"User-Agent": self.ua}
        h.update(headers or {})
        if isinstance(data, dict):
            data = urllib.parse.urlencode(data, doseq=True).encode()
            content_type = content_type or "application/x-www-form-urlencoded"
        if content_type:
            h["Content-Type"] = content_type
        req = urllib.request.Request(url, data=data, headers=h, method=method)
        opener = self.follow if follow else self.stay
        try:
            with opener.open(req, timeout=60) as r:
                return Response(r.status, r.headers, r.read(), r.geturl())
        except urllib.error.HTTPError as e:
            return Response(e.code, e.headers, e.read(), url)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, data, **kw):
        return self.request("POST", path, data=data, **kw)

    def post_multipart(self, path, fields, files, **kw):
        boundary = uuid.uuid4().hex
        body = bytearray()
        for k, v in fields.items():
            body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").encode()
        for k, (name, ctype, data) in files.items():
            body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{name}\"\r\n"
                     f"Content-Type: {ctype}\r\n\r\n").encode() + data + b"\r\n"
        body += f"--{boundary}--\r\n".encode()
        return self.request("POST", path, data=bytes(body),
                            content_type=f"multipart/form-data; boundary={boundary}", **kw)


def png(width, height, rgb):
    """A small truecolour PNG of one colour."""
    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def find(pattern, text, what):
    m = re.search(pattern, text)
    if not m:
        raise Failure(f"{what}: {pattern!r} not found")
    return m.group(1)


def raw_get(port, path, host="127.0.0.1"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path, headers={"Host": host})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, dict(r.getheaders()), body
