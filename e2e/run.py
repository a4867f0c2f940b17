"""Runs the end-to-end suite: each application in its own temporary folder, under the real
`isola` binary, driven over HTTP. Usage: e2e/run [APP ...] (default: all)."""
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lib import ARTIFACTS, Failure, log  # noqa: E402
import dokuwiki  # noqa: E402
import phpmyadmin  # noqa: E402
import status  # noqa: E402
import wordpress  # noqa: E402

APPS = {
    "wordpress": wordpress.run,
    "dokuwiki": dokuwiki.run,
    "phpmyadmin": phpmyadmin.run,
    "status": status.run,
}


def main(argv):
    wanted = argv or list(APPS)
    unknown = [a for a in wanted if a not in APPS]
    if unknown:
        print(f"unknown app(s): {', '.join(unknown)}; known: {', '.join(APPS)}", file=sys.stderr)
        return 2
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    results = {}
    for app in wanted:
        work = Path(tempfile.mkdtemp(prefix=f"isola-e2e-{app}-"))
        t = time.monotonic()
        try:
            APPS[app](work)
            results[app] = ("passed", time.monotonic() - t)
        except Exception as e:  # noqa: BLE001
            results[app] = ("FAILED", time.monotonic() - t)
            log(f"{app} FAILED: {e}")
            if not isinstance(e, Failure):
                traceback.print_exc()
            keep = ARTIFACTS / f"{app}-workdir"
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(work, keep, symlinks=True, ignore_dangling_symlinks=True,
                            ignore=shutil.ignore_patterns("data", "*.sock"))
            log(f"{app}: logs and configs kept in {keep}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    for app, (status, secs) in results.items():
        print(f"e2e {app}: {status} ({secs:.0f} s)")
    failed = sum(1 for s, _ in results.values() if s != "passed")
    print(f"e2e: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
