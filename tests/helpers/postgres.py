"""A throw-away PostgreSQL server on loopback, from the installed binaries (Debian's ``postgresql`` package).

Used by the tuning tests (a fixture starts one when ``ETM_TEST_POSTGRES_URL``
is not set) and by ``.ci/run``::

    python3 tests/helpers/postgres.py start DIR   # prints the server's URL
    python3 tests/helpers/postgres.py stop DIR

PostgreSQL refuses to run as root, so under root the server runs as the
``postgres`` user the package creates. Only the standard library is used, so
``.ci/run`` can call it before the virtual environment exists.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

USER = "etm"


def bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/N/bin`` holding ``initdb`` and ``pg_ctl``."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL's initdb was not found under /usr/lib/postgresql/*/bin: install Debian's "
                           "postgresql package (apt-get install -y postgresql; .ci/run does it)")
    return Path(found[-1]).parent


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(root: str | os.PathLike[str]) -> str:
    """Create a cluster in ``root`` (an empty or missing directory), start it; returns its URL."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        root.chmod(0o700)
    bins, data, port = bin_dir(), root / "data", _free_port()
    subprocess.run(_as_server_user([str(bins / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8",
                                    "--no-sync"]), check=True, capture_output=True)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
    subprocess.run(_as_server_user([str(bins / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-o",
                                    options, "-w", "-t", "60", "start"]), check=True, capture_output=True)
    (root / "port").write_text(str(port))
    return f"postgresql://{USER}@127.0.0.1:{port}/postgres"


def stop(root: str | os.PathLike[str]) -> None:
    """Stop the server of ``root`` and delete the directory."""
    root = Path(root)
    if (root / "data" / "postmaster.pid").exists():
        subprocess.run(_as_server_user([str(bin_dir() / "pg_ctl"), "-D", str(root / "data"), "-m", "fast", "-w",
                                        "stop"]), check=False, capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit("usage: postgres.py start|stop DIR")
    if sys.argv[1] == "start":
        print(start(sys.argv[2]))
    else:
        stop(sys.argv[2])
