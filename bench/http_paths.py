"""Requests per second of the device paths Wallet hits most, beside a bare Flask route.

Run from anywhere: `python bench/http_paths.py [--rounds 3] [--seconds 5] [--databases ...]`.

Every server runs under gunicorn pinned to core 0 (`taskset -c 0 gunicorn -w 2 ...`, the same
settings for the real app and for bench/bare_app.py); the load generator is wrk pinned to
core 1, and so are the machine's PostgreSQL processes for the run (when run as root; with
`--postgres-cores any` they are left to share the server's core). In production the database
has a machine of its own; sharing gunicorn's one core, its backends would make this measure
PostgreSQL's CPU as much as the app's. Targets, measured in turn within each round so they
share the machine's load:

- bare: `GET /ping` on bench/bare_app.py, the baseline;
- serials 204: `GET /wallet/v1/devices/<d>/registrations/<ptid>?passesUpdatedSince=<latest>`
  for a device holding 10 passes, nothing changed since (what a phone gets almost always);
- serials 200: the same with a tag two updates old, answering two serial numbers;
- pass 304: `GET /wallet/v1/passes/<ptid>/<serial>` with the pass's token and
  If-Modified-Since equal to its Last-Modified;
- bare + 1 query (a reference, not held to the goal): `GET /query` on bench/bare_app.py,
  one SELECT through SQLAlchemy on the same database, the floor of any database route.

Each database (PostgreSQL `bench_passes` on 127.0.0.1 as user postgres, and a SQLite file)
gets a fresh schema from the migrations and seed data through the admin API and the device
registration endpoint. The app runs as in production (request log at INFO, to a file).
Goal: every path of the app at least 50% of the bare route's requests/s ("MET"/"MISSED";
references and a --candidate app, for trying a fix side by side, get "met"/"missed").
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/x.py` puts bench/, not the repo, on the path

from app import database_url  # noqa: E402
from bench.build_passes import (  # noqa: E402
    SECRET_KEY,
    app_environment,
    create_passes,
    machine_description,
    make_app,
    write_chain,
)

GOAL = 0.50
SERVER_CORE = 0
LOAD_CORE = 1
POSTGRES_DATABASE = "bench_passes"
POSTGRES_URL = f"postgresql://postgres@127.0.0.1/{POSTGRES_DATABASE}"
DEVICE = "0123456789abcdef0123456789abcdef"
PUSH_TOKEN = "ab" * 32
PASSES_PER_DEVICE = 10


@dataclass
class Server:
    """A running gunicorn: its URL and its process group (the master and its workers)."""

    url: str
    group: int

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by every process of the group."""
        ticks = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # the process ended meanwhile
            if int(fields[2]) == self.group:  # after the name: state, ppid, pgrp, ...
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Target:
    """One URL to load, with the headers and the status it must answer."""

    name: str
    server: Server
    path: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    judged: bool = True  # held to the goal (the real app's paths), or only a reference
    results: list[float] = field(default_factory=list)  # requests/s, one per round
    cpu: list[float] = field(default_factory=list)  # server CPU ms per request, one per round

    @property
    def url(self) -> str:
        return self.server.url + self.path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def gunicorn_command(
    app_spec: str, port: int, args: argparse.Namespace, candidate: bool = False
) -> list[str]:
    # Only the candidate looks in --pythonpath: it may hold another checkout's app.py,
    # which must not stand in for the app under test or the bare app.
    python_path = ["--pythonpath", args.pythonpath] if candidate and args.pythonpath else []
    return [
        "taskset", "-c", str(SERVER_CORE),
        "gunicorn", "-w", str(args.workers), "-k", args.worker_class,
        *(["--threads", str(args.threads)] if args.worker_class == "gthread" else []),
        "-b", f"127.0.0.1:{port}", "--chdir", str(ROOT),
        "--graceful-timeout", "5", "--log-level", "warning", "--no-control-socket",
        *python_path,
        app_spec,
    ]  # fmt: skip


def wrk_command(target: Target, args: argparse.Namespace, seconds: int | None = None) -> list[str]:
    headers = [
        part for name, value in target.headers.items() for part in ("-H", f"{name}: {value}")
    ]
    return [
        "taskset", "-c", str(LOAD_CORE),
        "wrk", "-t1", f"-c{args.connections}", f"-d{seconds or args.seconds}s", "--timeout", "5s",
        *headers, target.url,
    ]  # fmt: skip


@contextmanager
def server(
    app_spec: str,
    environment: dict[str, str],
    args: argparse.Namespace,
    log: Path,
    candidate: bool = False,
) -> Iterator[Server]:
    """A gunicorn serving `app_spec` on a free port; stopped (its whole group) on exit.

    Its output (the app logs one line per request) goes to `log`, as it would go to a log
    pipe in production, not to this terminal.
    """
    port = free_port()
    command = gunicorn_command(app_spec, port, args, candidate)
    print(f"server: {shlex.join(command)}")
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            env={**os.environ, **environment},
            start_new_session=True,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_listening(port, process)
        yield Server(f"http://127.0.0.1:{port}", process.pid)
    except BaseException:
        print(f"server log ({log}), last lines:\n" + "\n".join(log.read_text().splitlines()[-20:]))
        raise
    finally:
        stop(process)


def wait_until_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not listen on port {port} within 30 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's own process group (master and workers), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def psql(sql: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql],
        check=True,
        timeout=60,
        capture_output=True,
    )


def postgres_processes() -> list[int]:
    """The machine's PostgreSQL processes: the postmaster, its helpers and backends."""
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "postgres":
                pids.append(int(comm.parent.name))
        except OSError:
            continue  # the process ended meanwhile
    return pids


@contextmanager
def postgres_on_core(core: int) -> Iterator[str]:
    """Keep PostgreSQL off the server's core for the run, then give its cores back.

    In production the database has a machine of its own (Heroku Postgres always does). On
    this one, its backends would otherwise run on the core gunicorn is pinned to, and the
    benchmark would measure PostgreSQL's CPU as much as the app's. New backends inherit
    the postmaster's affinity. Yields a line saying what was done.
    """
    everything = os.sched_getaffinity(0)
    try:
        pinned = all(_set_cores(pid, {core}) for pid in postgres_processes())
        yield (
            f"PostgreSQL: its processes pinned to core {core} for the run"
            if pinned
            else "PostgreSQL: not (all) pinned, as only root may; it shares the server's core"
        )
    finally:
        for pid in postgres_processes():  # the ones we moved, and backends started since
            _set_cores(pid, everything)


def _set_cores(pid: int, cores: set[int]) -> bool:
    try:
        os.sched_setaffinity(pid, cores)
    except ProcessLookupError:
        pass  # it ended meanwhile
    except PermissionError:
        return False
    return True


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty bench_passes database, dropped afterwards."""
    psql(f"DROP DATABASE IF EXISTS {POSTGRES_DATABASE} WITH (FORCE)")
    psql(f"CREATE DATABASE {POSTGRES_DATABASE}")
    try:
        yield POSTGRES_URL
    finally:
        psql(f"DROP DATABASE IF EXISTS {POSTGRES_DATABASE} WITH (FORCE)")


def seed(environment: dict[str, str]) -> dict[str, str]:
    """Schema, 10 passes and one device holding them all; returns what the targets need."""
    from models import db
    from passes import store
    from passes.tokens import authentication_token

    app = make_app(environment)
    client = app.test_client()
    serials = [f"bench-{number:04d}" for number in range(1, PASSES_PER_DEVICE + 1)]
    pass_type_identifier = create_passes(app, serials)
    for serial in serials:
        token = authentication_token(SECRET_KEY, pass_type_identifier, serial)
        response = client.post(
            f"/wallet/v1/devices/{DEVICE}/registrations/{pass_type_identifier}/{serial}",
            json={"pushToken": PUSH_TOKEN},
            headers={"Authorization": f"ApplePass {token}"},
        )
        if response.status_code != 201:
            raise RuntimeError(f"registering {serial}: {response.status_code}")
    serial = serials[0]
    token = authentication_token(SECRET_KEY, pass_type_identifier, serial)
    response = client.get(
        f"/wallet/v1/passes/{pass_type_identifier}/{serial}",
        headers={"Authorization": f"ApplePass {token}"},
    )
    if response.status_code != 200:
        raise RuntimeError(f"fetching {serial}: {response.status_code}")
    with app.app_context():
        latest = store.current_update_tag()
        db.engine.dispose()  # the servers open their own connections
    return {
        "pass_type_identifier": pass_type_identifier,
        "serial": serial,
        "token": token,
        "last_modified": response.headers["Last-Modified"],
        "latest_tag": str(latest),
        "older_tag": str(latest - 2),
    }


def app_targets(label: str, app: Server, seeded: dict[str, str]) -> list[Target]:
    ptid = seeded["pass_type_identifier"]
    serials = f"/wallet/v1/devices/{DEVICE}/registrations/{ptid}?passesUpdatedSince="
    return [
        Target(f"serials 204, {label}", app, serials + seeded["latest_tag"], 204),
        Target(f"serials 200 (2 of 10), {label}", app, serials + seeded["older_tag"], 200),
        Target(
            f"pass 304, {label}",
            app,
            f"/wallet/v1/passes/{ptid}/{seeded['serial']}",
            304,
            {
                "Authorization": f"ApplePass {seeded['token']}",
                "If-Modified-Since": seeded["last_modified"],
            },
        ),
    ]


def check_status(target: Target) -> None:
    request = urllib.request.Request(target.url, headers=target.headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status = response.status
    except urllib.error.HTTPError as error:  # urllib raises on 304 too
        status = error.code
    if status != target.status:
        raise RuntimeError(f"{target.name}: {target.url} answered {status}, not {target.status}")


REQUESTS_PER_SECOND = re.compile(r"Requests/sec:\s+([\d.]+)")
REQUESTS = re.compile(r"(\d+) requests in")
PROBLEMS = re.compile(r"(Socket errors:.*|Non-2xx or 3xx responses:.*)")


def run_wrk(
    target: Target, args: argparse.Namespace, seconds: int | None = None
) -> tuple[float, float]:
    """Requests/s of one wrk run against `target`, and the server's CPU ms per request."""
    cpu_before = target.server.cpu_seconds()
    result = subprocess.run(
        wrk_command(target, args, seconds),
        capture_output=True,
        text=True,
        timeout=(seconds or args.seconds) + 60,
        check=True,
    )
    cpu = target.server.cpu_seconds() - cpu_before
    rate, requests = REQUESTS_PER_SECOND.search(result.stdout), REQUESTS.search(result.stdout)
    if rate is None or requests is None:
        raise RuntimeError(f"cannot read wrk output:\n{result.stdout}{result.stderr}")
    for problem in PROBLEMS.findall(result.stdout):
        # gunicorn's sync workers close every connection, so a few connect errors can
        # show up under load; report them rather than hide them.
        print(f"  wrk, {target.name}: {problem.strip()}")
    return float(rate.group(1)), 1000 * cpu / max(int(requests.group(1)), 1)


def give_up(signum: int, frame: object) -> None:
    raise TimeoutError("the benchmark ran past --max-minutes; servers are being stopped")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run")
    parser.add_argument("--connections", type=int, default=8, help="wrk -c")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn -w")
    parser.add_argument("--worker-class", default="sync", help="gunicorn -k")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn --threads (gthread)")
    parser.add_argument(
        "--candidate",
        metavar="SPEC",
        help="also load this app (e.g. 'patched:create_app()') on the same databases",
    )
    parser.add_argument(
        "--pythonpath",
        help="gunicorn --pythonpath for --candidate only (e.g. a worktree of the old code)",
    )
    parser.add_argument(
        "--postgres-cores",
        choices=("load", "any"),
        default="load",
        help="PostgreSQL's processes on the load generator's core (default), or left anywhere",
    )
    parser.add_argument("--max-minutes", type=float, default=20, help="stop everything after")
    parser.add_argument(
        "--databases", default="postgresql,sqlite", help="comma-separated: postgresql, sqlite"
    )
    args = parser.parse_args()
    for tool in ("wrk", "gunicorn", "taskset"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (wrk: apt-get install -y wrk)", file=sys.stderr)
            return 2
    if (os.cpu_count() or 1) < 2:
        print("needs two cores: one for the servers, one for wrk", file=sys.stderr)
        return 2

    # Every wrk run and every psql call has its own timeout; this bounds the whole run, and
    # the exception unwinds the ExitStack below, which stops every server it started.
    signal.signal(signal.SIGALRM, give_up)
    signal.alarm(int(args.max_minutes * 60))
    print(machine_description())
    gunicorn_settings = f"-w {args.workers} -k {args.worker_class}"
    if args.worker_class == "gthread":
        gunicorn_settings += f" --threads {args.threads}"
    print(
        f"servers: gunicorn {gunicorn_settings} on core {SERVER_CORE}; load: wrk -t1 "
        f"-c{args.connections} -d{args.seconds}s on core {LOAD_CORE}; {args.rounds} rounds"
    )

    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        chain = write_chain(folder / "chain")
        logs = folder / "servers.log"
        bare = stack.enter_context(server("bench.bare_app:create_app()", {}, args, logs))
        targets = [Target("bare Flask route", bare, "/ping", 200)]
        for database in args.databases.split(","):
            if database == "postgresql":
                if args.postgres_cores == "load":
                    print(stack.enter_context(postgres_on_core(LOAD_CORE)))
                try:
                    url = stack.enter_context(postgres_database())
                except (OSError, subprocess.SubprocessError) as error:
                    print(
                        f"cannot create the {POSTGRES_DATABASE} database with psql as user "
                        f"postgres on 127.0.0.1 ({error}); run with --databases sqlite",
                        file=sys.stderr,
                    )
                    return 2
            elif database == "sqlite":
                url = f"sqlite:///{folder / 'bench.db'}"
            else:
                raise SystemExit(f"unknown database {database!r}")
            environment = app_environment(chain, url)
            seeded = seed({**environment, "LOG_LEVEL": "WARNING"})
            base = stack.enter_context(server("app:create_app()", environment, args, logs))
            targets += app_targets(database, base, seeded)
            if args.candidate:
                base = stack.enter_context(
                    server(args.candidate, environment, args, logs, candidate=True)
                )
                for target in app_targets(f"{database}, candidate", base, seeded):
                    target.judged = False
                    targets.append(target)
            # The floor for a database-backed route: bare Flask plus one SELECT.
            floor_environment = {"BENCH_DATABASE_URL": database_url(url, str(folder))}
            floor = stack.enter_context(
                server("bench.bare_app:create_app()", floor_environment, args, logs)
            )
            targets.append(
                Target(f"bare + 1 query, {database}", floor, "/query", 200, judged=False)
            )
        for target in targets:
            check_status(target)
        example = next(t for t in targets if t.name.startswith("pass 304"))
        print(f"example load command: {shlex.join(wrk_command(example, args))}")

        bare, paths = targets[0], targets[1:]
        for target in targets:  # warm up: connections, statement caches, lazy imports
            run_wrk(target, args, seconds=1)
        for number in range(1, args.rounds + 1):
            # The bare route before and after the round gives its baseline; the paths go in
            # a rotated order, so none always runs first after the baseline.
            before = run_wrk(bare, args)
            shift = (number - 1) % len(paths)
            for target in paths[shift:] + paths[:shift]:
                rate, cpu = run_wrk(target, args)
                target.results.append(rate)
                target.cpu.append(cpu)
            after = run_wrk(bare, args)
            bare.results.append((before[0] + after[0]) / 2)
            bare.cpu.append((before[1] + after[1]) / 2)
            line = "  ".join(f"{t.results[-1]:6.0f}" for t in targets)
            print(f"round {number} req/s: {line}")

    print()
    print(
        f"| {'target':<42} | req/s | / bare: median (range) | goal   "
        "| server CPU ms/req | bare CPU / this |"
    )
    print(f"|{'-' * 44}|------:|{'-' * 24}|--------|------------------:|----------------:|")
    failed = False
    for target in targets:
        ratios = [r / b for r, b in zip(target.results, bare.results, strict=True)]
        ratio = statistics.median(ratios)
        spread = f"{ratio:.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        verdict = "" if target is bare else ("met" if ratio >= GOAL else "missed")
        if target.judged and target is not bare:
            verdict = verdict.upper()
            failed |= ratio < GOAL
        cpu = statistics.median(target.cpu)
        print(
            f"| {target.name:<42} | {statistics.median(target.results):5.0f} | {spread:<22} "
            f"| {verdict:<6} | {cpu:17.3f} | {statistics.median(bare.cpu) / cpu:15.2f} |"
        )
    verdict = "MISSED" if failed else "MET"
    print(f"\ngoal: every path of the app at least {GOAL:.0%} of the bare route: {verdict}")
    print(
        "server CPU: gunicorn's processes only (PostgreSQL's backends are not counted); "
        "bare CPU / this is the req/s ratio one uncontended core would give."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
