"""The processes bench/fanout.py runs: PostgreSQL databases, PgBouncer, and the Procfile's.

Everything listens on 127.0.0.1 only, and everything started here is stopped on the way out
(SIGTERM to its own process group, SIGKILL if it lingers).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2

from bench.process_usage import session_cpu
from tests import pgbouncer as pgbouncer_settings

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_PORT = 5432
PGBOUNCER = pgbouncer_settings.PGBOUNCER


def postgres_settings() -> str:
    """The server settings the cycle's figures depend on, as a line for the report.

    Production runs autovacuum, which keeps the planner's statistics current; without it
    (a CI configuration may turn it off) the device and worker statements are planned from
    tables as they were before the seeding, and the figures are not production's."""
    connection = connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            version = cursor.fetchone()[0].split(" on ")[0]
            cursor.execute("SHOW autovacuum")
            autovacuum = cursor.fetchone()[0]
    finally:
        connection.close()
    warning = "" if autovacuum == "on" else " (production runs it: these are not its figures)"
    return f"{version}, autovacuum {autovacuum}{warning}"


def database_url(database: str, port: int = POSTGRES_PORT) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


def connect(database: str = "postgres") -> psycopg2.extensions.connection:
    """A direct, autocommit connection to the local PostgreSQL as user postgres."""
    connection = psycopg2.connect(
        host="127.0.0.1", port=POSTGRES_PORT, user="postgres", dbname=database
    )
    connection.autocommit = True
    return connection


@contextmanager
def fresh_database(name: str) -> Iterator[str]:
    """An empty database `name` (dropped first if a previous run left it), dropped afterwards."""

    def run(statement: str) -> None:
        connection = connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()

    run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    run(f"CREATE DATABASE {name}")
    try:
        yield database_url(name)
    finally:
        run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def procfile_commands() -> dict[str, str]:
    """The Procfile's process types and their commands: what production runs."""
    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        kind, _, command = line.partition(":")
        if command.strip():
            commands[kind.strip()] = command.strip()
    return commands


def run_command(command: str, environment: dict[str, str], log: Path, timeout: float = 600) -> None:
    """Run a command to completion in the repository (e.g. the Procfile's release step)."""
    with log.open("ab") as output:
        result = subprocess.run(
            shlex.split(command),
            env={**os.environ, **environment},
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    if result.returncode != 0:
        raise RuntimeError(f"{command!r} exited with {result.returncode}; see {log}\n{tail(log)}")


@contextmanager
def process(command: str, environment: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A long-running command in its own session (so its CPU can be told apart), stopped after."""
    with log.open("ab") as output:
        child = subprocess.Popen(
            shlex.split(command),
            env={**os.environ, **environment},
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield child
    finally:
        stop(child)


def stop(child: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM to the child's process group, SIGKILL to it if it outlives `grace` seconds."""
    if child.poll() is None:
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
    try:
        os.killpg(child.pid, signal.SIGKILL)  # workers the leader left behind, if any
    except ProcessLookupError:
        pass


async def wait_until_listening(port: int, child: subprocess.Popen, log: Path, timeout: float = 60):
    """Return once something accepts connections on 127.0.0.1:`port`; fail if the child exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"{child.args} exited with {child.returncode}\n{tail(log)}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise RuntimeError(f"nothing listened on port {port} within {timeout:.0f} s\n{tail(log)}")


async def wait_until_idle(child: subprocess.Popen, processes: int, log: Path) -> None:
    """Until the child's session has `processes` processes and they have stopped using CPU
    (gunicorn listens before its workers have imported the app): start-up is not the cycle."""
    deadline = time.monotonic() + 120
    before = session_cpu(child.pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = session_cpu(child.pid)
        if now[0] == before[0] == processes and now[1] - before[1] < IDLE_CPU:
            return
        before = now
    raise RuntimeError(f"{child.args} did not settle within 120 s\n{tail(log)}")


IDLE_CPU = 0.03  # seconds of CPU in half a second: a worker's poll, not an app importing


def check_port_free(port: int) -> None:
    """Fail now, readably, if something listens on 127.0.0.1:`port`."""
    with socket.socket() as probe:
        # As servers do: connections of an earlier run in TIME_WAIT do not hold the port.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise SystemExit(f"port {port} on 127.0.0.1 is in use; stop what holds it") from None


@contextmanager
def pgbouncer(
    database: str, port: int, server_lifetime: int, pool_size: int, log: Path
) -> Iterator[subprocess.Popen]:
    """Debian's PgBouncer in transaction mode in front of `database`, logging to `log`: the
    one the tests run (tests/pgbouncer.py), with this run's server lifetime and pool size."""
    with tempfile.TemporaryDirectory(prefix="bench-pgbouncer-") as temporary:
        config = pgbouncer_settings.write_config(
            Path(temporary),
            port,
            f"postgresql://postgres@127.0.0.1:{POSTGRES_PORT}/{database}",
            server_lifetime=server_lifetime,
            pool_size=pool_size,
        )
        with process(shlex.join(pgbouncer_settings.command(config)), {}, log) as child:
            yield child


def tail(log: Path, lines: int = 25) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({log} unreadable)"
