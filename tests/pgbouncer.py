"""A real PgBouncer (Debian's package) in front of the test PostgreSQL, for tests and CI.

Transaction pooling with round-robin server connections recycled every few seconds, as
Heroku's pooler and most managed ones run. Start, stop and start it again to play a pooler
(or database) restart. CI runs the whole suite through one:

    python -m tests.pgbouncer PORT DATABASE_URL    # in the foreground until SIGTERM
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import sqlalchemy as sa

PGBOUNCER = "/usr/sbin/pgbouncer"

CONFIG = """\
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
; What Heroku's and most managed poolers do: a server connection per transaction, handed
; out round robin, and replaced often.
pool_mode = transaction
server_round_robin = 1
server_lifetime = {server_lifetime}
server_idle_timeout = {server_lifetime}
max_client_conn = 1000
default_pool_size = {pool_size}
ignore_startup_parameters = extra_float_digits,options
"""


def write_config(
    folder: Path, port: int, database_url: str, *, server_lifetime: int = 5, pool_size: int = 10
) -> Path:
    """PgBouncer's settings in `folder`, in front of the server of `database_url`; the path
    of its ini. PgBouncer refuses to run as root and runs as `postgres` then: it must read
    them."""
    server = sa.make_url(database_url)
    folder.chmod(0o755)
    users = folder / "users.txt"
    users.write_text(f'"{server.username}" ""\n')
    config = folder / "pgbouncer.ini"
    config.write_text(
        CONFIG.format(
            host=server.host or "127.0.0.1",
            port=server.port or 5432,
            listen_port=port,
            folder=folder,
            server_lifetime=server_lifetime,
            pool_size=pool_size,
        )
    )
    for path in (users, config):
        path.chmod(0o644)
    return config


def command(config: Path) -> list[str]:
    """The command that runs PgBouncer with `config`, as user postgres when we are root."""
    return [PGBOUNCER, *(["-u", "postgres"] if os.geteuid() == 0 else []), str(config)]


class PgBouncer:
    """PgBouncer on 127.0.0.1:`port` in front of the server of `database_url`."""

    def __init__(self, port: int, database_url: str) -> None:
        server = sa.make_url(database_url)
        self.port = port
        self.url = server.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
        self.folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        self.config = write_config(self.folder, port, database_url)
        self.log = self.folder / "output.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command(self.config), stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"PgBouncer did not start: {self.log.read_text()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Shut down at once (SIGTERM), closing every client connection."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)
        self.process = None

    def __enter__(self) -> PgBouncer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def main(port: str, database_url: str) -> None:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # A handler, not a blocked signal: a blocked one would be inherited by PgBouncer.
        signal.signal(signum, lambda *_: stop.set())
    with PgBouncer(int(port), database_url):
        print(f"PgBouncer in transaction mode on port {port}", flush=True)
        while not stop.wait(1):
            pass


if __name__ == "__main__":
    main(*sys.argv[1:])
