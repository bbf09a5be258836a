"""Push fan-out: one PATCH to a pass held by 100,000 devices, pushed by one worker on one core.

    python bench/push_worker.py [--devices 100000] [--rounds 3] [--profile]
                                [--experiments [--experiment-rounds 3]]

Sets up, each run from scratch:
- nginx (bench/nginx_apns.sh) on CPU 1 as the APNs stand-in: HTTP/2, TLS, client certificate
  checked against the fake Apple root + WWDR, `return 200` on /3/device/;
- a fresh PostgreSQL database `bench_push` on 127.0.0.1 (user postgres), schema from the
  migrations, one pass made through the admin API and `--devices` devices registered to it
  (bulk INSERT ... SELECT generate_series);
- this process pinned to CPU 0 (after starting nginx). PostgreSQL is not pinned: it runs
  wherever the OS puts it, sharing both cores.

Each round measures two ways of draining the queue that one PATCH fills:
- in-process: PATCH through the test client, then `pushing.drain_now()` at once (what
  `flask passes worker --once` runs), with timers around claim / send / finish;
- worker process: the real `flask passes worker` (PUSH_POLL_SECONDS=0.2) on CPU 0, started
  and idle before the PATCH; the clock runs from the PATCH's response (its commit) until the
  worker's log has reported every device sent (log polled every 10 ms).

Then, without the database: the sender's ceiling (the same pushes over a warm connection) and
the HPACK cost per push; and how long `_finish` takes for a batch that APNs answered with 429.

--experiments tries changes to the drain, monkeypatched here only (the app is untouched), one
PATCH + in-process drain each, interleaved over --experiment-rounds; --profile prints a cProfile
of one in-process drain. Every figure comes with the CPU time other processes used meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import platform
import pstats
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/x.py` puts bench/, not the repo, on the path

import psycopg2  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from flask import Flask  # noqa: E402

from bench.build_passes import cpu_model, make_app  # noqa: E402

GOAL = 5000  # pushes/s
WORKER_CPU = 0
NGINX_CPU = 1
NGINX = ROOT / "bench" / "nginx_apns.sh"
DATABASE = "bench_push"
SECRET_KEY = "bench-secret-key-that-is-long-enough"
ADMIN_TOKEN = "bench-admin-token"
P12_PASSWORD = "bench-p12-password"
SERIAL = "bench"
POLL_SECONDS = 0.2  # the worker's idle poll, as PUSH_POLL_SECONDS
LOG_POLL = 0.01
SENT_LINE = re.compile(r"push batch: sent (\d+)")


def machine_description() -> str:
    model = cpu_model()
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    postgres = run_on_server("SHOW server_version")
    return "\n".join(
        [
            f"nproc: {os.cpu_count()}  CPU: {model}",
            f"Python {platform.python_version()} on {platform.platform()}",
            f"h2 {version('h2')}, SQLAlchemy {version('SQLAlchemy')}, "
            f"psycopg2 {version('psycopg2-binary')}, PostgreSQL {postgres}, {nginx}",
        ]
    )


def code_version() -> str:
    """The commit measured, and the app files that differ from it."""

    def git(*arguments: str) -> str:
        return subprocess.run(
            ["git", *arguments], cwd=ROOT, capture_output=True, text=True, timeout=30
        ).stdout

    changed = git("status", "--porcelain", "--untracked-files=no").splitlines()
    edited = [line[3:] for line in changed]  # "XY path"
    return git("log", "-1", "--format=%h %s").strip() + (
        f" + uncommitted changes to {', '.join(edited)}" if edited else ""
    )


def cpu_busy(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over `seconds` while this process sleeps: other load."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle

    total, idle = sample()
    time.sleep(seconds)
    total2, idle2 = sample()
    return 1 - (idle2 - idle) / max(1, total2 - total)


# --- set-up -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_nginx(folder: Path, nginx_dir: Path) -> tuple[dict[str, Path], str]:
    """The fake Apple chain on disk (for the app) and nginx trusting it; returns (paths, url)."""
    from tests.apple_chain import make_chain, make_server_certificate

    chain = make_chain()
    paths = chain.write(folder / "chain", password=P12_PASSWORD.encode())
    server = make_server_certificate(chain, ["127.0.0.1", "localhost"])
    files = {
        "server.pem": server.cert_pem(),
        "server.key": server.key_pem(),
        "clients.pem": chain.root.cert_pem() + chain.wwdr.cert_pem(),  # as Apple trusts WWDR
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    port = free_port()
    command = [NGINX, "start", nginx_dir, port, *(folder / n for n in files)]
    subprocess.run(
        [str(part) for part in command],
        check=True,
        timeout=300,  # may apt-get install nginx-light
        env={**os.environ, "NGINX_CPU": str(NGINX_CPU)},
    )
    return paths, f"https://127.0.0.1:{port}"


def recreate_database() -> str:
    drop_database()
    run_on_server(f"CREATE DATABASE {DATABASE}")
    return f"postgresql+psycopg2://postgres@127.0.0.1/{DATABASE}"


def drop_database() -> None:
    run_on_server(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def run_on_server(statement: str) -> Any:
    """Run one statement in the server's `postgres` database; the first value it returns."""
    connection = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    connection.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            return cursor.fetchone()[0] if cursor.description else None
    finally:
        connection.close()


def app_environment(chain: dict[str, Path], database_url: str, apns_url: str) -> dict[str, str]:
    """What a production web process and worker would be given (the web side never pushes)."""
    return {
        "SECRET_KEY": SECRET_KEY,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "PUBLIC_URL": "https://passes.example.test",
        "DATABASE_URL": database_url,
        "PASS_CERTIFICATE": str(chain["pass_p12"]),
        "PASS_CERTIFICATE_PASSWORD": P12_PASSWORD,
        "WWDR_CERTIFICATE": str(chain["wwdr"]),
        "APNS_URL": apns_url,
        "APNS_CA_FILE": str(chain["root"]),
        "PUSH_MODE": "off",
        "PUSH_POLL_SECONDS": str(POLL_SECONDS),
        "LOG_LEVEL": "WARNING",
    }


def seed(app: Flask, devices: int) -> str:
    """One pass through the admin API, then `devices` devices registered to it in bulk."""
    from models import db

    response = app.test_client().post(
        "/api/passes",
        json={"template": "storecard", "serialNumber": SERIAL},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    if response.status_code != 201:
        raise RuntimeError(f"creating the pass: {response.status_code} {response.get_json()}")
    pass_type_identifier = response.get_json()["passTypeIdentifier"]
    with app.app_context():
        # Tokens as tests/test_pushing.py makes them: f"{i:064x}".
        db.session.execute(
            sa.text(
                "INSERT INTO devices (device_library_identifier, push_token, created_at, "
                "updated_at) SELECT 'device-' || i, lpad(to_hex(i), 64, '0'), now(), now() "
                "FROM generate_series(0, :count - 1) AS i"
            ),
            {"count": devices},
        )
        db.session.execute(
            sa.text(
                "INSERT INTO registrations (device_id, pass_id, created_at) "
                "SELECT devices.id, passes.id, now() FROM devices, passes "
                "WHERE passes.serial_number = :serial"
            ),
            {"serial": SERIAL},
        )
        db.session.commit()
        analyze(app)
    return pass_type_identifier


def analyze(app: Flask) -> None:
    from models import db

    with app.app_context(), db.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(
            sa.text("VACUUM ANALYZE")
        )


# --- measuring ----------------------------------------------------------------------------


@dataclass
class Phase:
    wall: float = 0.0
    cpu: float = 0.0
    calls: int = 0


@dataclass
class Timers:
    """Wall and CPU time spent in each wrapped function, in each SQL statement and in the
    garbage collector. Process CPU time is per phase only while one thing runs at a time
    (not so in the overlapped experiment, whose phase figures are not printed)."""

    phases: dict[str, Phase] = field(default_factory=dict)
    statements: dict[str, Phase] = field(default_factory=dict)
    current: str = ""  # the wrapped function running now, to label its statements
    collector: Phase = field(default_factory=Phase)  # Python's cyclic garbage collector
    _collecting: float = 0.0

    def gc_callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._collecting = time.perf_counter()
        else:
            self.collector.wall += time.perf_counter() - self._collecting
            self.collector.calls += 1

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        phase = self.phases.setdefault(name, Phase())

        def timed(*args: Any, **kwargs: Any) -> Any:
            start, cpu = time.perf_counter(), time.process_time()
            outer, self.current = self.current, name
            try:
                return function(*args, **kwargs)
            finally:
                self.current = outer
                phase.wall += time.perf_counter() - start
                phase.cpu += time.process_time() - cpu
                phase.calls += 1

        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            start, cpu = time.perf_counter(), time.process_time()
            outer, self.current = self.current, name
            try:
                return await function(*args, **kwargs)
            finally:
                self.current = outer
                phase.wall += time.perf_counter() - start
                phase.cpu += time.process_time() - cpu
                phase.calls += 1

        return timed_async if asyncio.iscoroutinefunction(function) else timed

    # Time inside cursor.execute (psycopg2 binds, round trip, PostgreSQL's work), per statement.
    def before_statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["bench_started"] = time.perf_counter(), time.process_time()

    def after_statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        start, cpu = conn.info.pop("bench_started")
        label = f"{self.current}: {statement_label(statement)}"
        phase = self.statements.setdefault(label, Phase())
        phase.wall += time.perf_counter() - start
        phase.cpu += time.process_time() - cpu
        phase.calls += 1


def statement_label(statement: str) -> str:
    """The verb and the first table named, as in "UPDATE pending_pushes"."""
    words = statement.split()
    verb = words[0].upper() if words else "?"
    tables = re.findall(r"(?:FROM|INTO|UPDATE|JOIN)\s+(\w+)", statement, re.IGNORECASE)
    return f"{verb} {tables[0] if tables else ''}".strip()


@contextmanager
def instrumented(timers: Timers) -> Iterator[None]:
    """Time claim / send / finish of the drain, and the PATCH's enqueue statement."""
    from passes import pushing, store
    from passes.apns import ApnsClient

    targets = [
        (pushing, "_claim", "claim"),
        (pushing, "_finish", "finish"),
        (ApnsClient, "push", "send"),
        (store, "_enqueue_pushes", "enqueue"),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]
    for owner, name, label in targets:
        setattr(owner, name, timers.wrap(label, getattr(owner, name)))
    sa.event.listen(sa.Engine, "before_cursor_execute", timers.before_statement)
    sa.event.listen(sa.Engine, "after_cursor_execute", timers.after_statement)
    gc.callbacks.append(timers.gc_callback)
    try:
        yield
    finally:
        gc.callbacks.remove(timers.gc_callback)
        for owner, name, original in saved:
            setattr(owner, name, original)
        sa.event.remove(sa.Engine, "before_cursor_execute", timers.before_statement)
        sa.event.remove(sa.Engine, "after_cursor_execute", timers.after_statement)


@dataclass
class Bench:
    """What every measurement needs: the app, its pass, and where the processes live."""

    app: Flask
    pass_type_identifier: str
    environment: dict[str, str]
    folder: Path
    devices: int
    timeout: float

    @property
    def nginx_dir(self) -> Path:
        return self.folder / "nginx"


def _cpu_ticks(pid: str) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


class OtherLoad:
    """CPU time that processes outside the benchmark used during a measurement. Ours are this
    process and its children, our nginx and the PostgreSQL backends of our database; on a
    shared machine anything else lowers every figure, so each figure is printed with it."""

    def __init__(self, nginx_dir: Path) -> None:
        self.nginx_dir = nginx_dir
        self.seconds = 0.0

    def _ours(self) -> dict[str, int]:
        nginx_pid = (self.nginx_dir / "nginx.pid").read_text().strip()
        roots = {str(os.getpid()), nginx_pid}
        ticks: dict[str, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes()
                parent = stat.rsplit(")", 1)[1].split()[1]
                if entry.name in roots or parent in roots or DATABASE.encode() in command:
                    ticks[entry.name] = _cpu_ticks(entry.name)
            except (OSError, IndexError):
                continue  # exited meanwhile
        return ticks

    @staticmethod
    def _busy() -> int:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields[:3]) + sum(fields[5:8])  # user nice system, irq softirq steal

    def __enter__(self) -> OtherLoad:
        self._start = self._busy(), self._ours()
        return self

    def __exit__(self, *exc_info: object) -> None:
        busy, ours = self._busy(), self._ours()
        start_busy, start_ours = self._start
        ours_used = sum(t - start_ours.get(pid, 0) for pid, t in ours.items())
        self.seconds = max(0, busy - start_busy - ours_used) / os.sysconf("SC_CLK_TCK")


def patch_pass(app: Flask, pass_type_identifier: str, value: str) -> float:
    """PATCH the pass through the test client; returns its latency in seconds."""
    client = app.test_client()
    start = time.perf_counter()
    response = client.patch(
        f"/api/passes/{pass_type_identifier}/{SERIAL}",
        json={"pass": {"logoText": value}},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"PATCH: {response.status_code} {response.get_json()}")
    return elapsed


def pending(app: Flask) -> int:
    from passes import pushing

    with app.app_context():
        return pushing.pending_count()


@dataclass
class Drain:
    patch: float  # s
    enqueue: float  # s of the PATCH spent in the INSERT ... SELECT of pending_pushes
    wall: float  # s from the PATCH's commit to the last device pushed
    cpu: float  # s of the worker's CPU time
    sent: int
    others: float = 0.0  # CPU s used meanwhile by processes not part of the benchmark
    collector: float = 0.0  # s in Python's cyclic garbage collector (in-process drains only)
    phases: dict[str, Phase] = field(default_factory=dict)  # claim, send, finish
    statements: dict[str, Phase] = field(default_factory=dict)  # "claim: UPDATE ..." etc.


def drain_in_process(bench: Bench, value: str, profiler: cProfile.Profile | None = None) -> Drain:
    """PATCH, then drain_now() right away, as `flask passes worker --once` would."""
    from passes import pushing

    timers = Timers()
    with instrumented(timers):
        latency = patch_pass(bench.app, bench.pass_type_identifier, value)
        collected_before = timers.collector.wall
        with OtherLoad(bench.nginx_dir) as others:
            start, cpu = time.perf_counter(), time.process_time()
            if profiler:
                profiler.enable()
            with bench.app.app_context():
                summary = pushing.drain_now()
            if profiler:
                profiler.disable()
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    phases = {k: v for k, v in timers.phases.items() if k != "enqueue"}
    statements = {k: v for k, v in timers.statements.items() if k.startswith(("claim:", "finish:"))}
    return Drain(
        patch=latency,
        enqueue=timers.phases["enqueue"].wall,
        wall=wall,
        cpu=cpu,
        sent=summary.sent,
        others=others.seconds,
        collector=timers.collector.wall - collected_before,
        phases=phases,
        statements=statements,
    )


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    return _cpu_ticks(str(pid)) / os.sysconf("SC_CLK_TCK")


def drain_by_worker(bench: Bench, value: str, log_path: Path) -> Drain:
    """The real `flask passes worker`, idle before the PATCH; timed until it logged every push."""
    env = {**os.environ, **bench.environment, "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "flask", "--app", "app:create_app", "passes", "worker"]
    with log_path.open("wb") as log_file:
        # Inherits this process's affinity: CPU 0.
        worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=log_file)
    try:
        wait_for(lambda: "worker started" in log_path.read_text(), worker, timeout=60)
        time.sleep(2 * POLL_SECONDS)  # let it reach its idle poll
        cpu_before = process_cpu(worker.pid)
        latency = patch_pass(bench.app, bench.pass_type_identifier, value)
        with OtherLoad(bench.nginx_dir) as others:
            start = time.perf_counter()
            done = lambda: sent_in_log(log_path) >= bench.devices  # noqa: E731
            wait_for(done, worker, timeout=bench.timeout)
            wall = time.perf_counter() - start
        cpu = process_cpu(worker.pid) - cpu_before
    finally:
        stop_process(worker)
    return Drain(latency, float("nan"), wall, cpu, sent_in_log(log_path), others.seconds)


def sent_in_log(log_path: Path) -> int:
    return sum(int(n) for n in SENT_LINE.findall(log_path.read_text()))


def wait_for(
    condition: Callable[[], bool], process: subprocess.Popen[bytes], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with status {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker did not finish within {timeout:g} s")
        time.sleep(LOG_POLL)  # polling its log file: no database queries that would compete


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # the worker's Ctrl-C: closes its APNs connections
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# --- experiments: changes to the drain, monkeypatched here only ---------------------------
#
# Each one replaces a piece of passes/pushing.py or of the h2/hpack request path for one PATCH +
# drain_now(), then puts the original back.


class _QuietLog:
    """Stands in for hpack's module logger: its 33 debug() calls per push cost a call each."""

    def debug(self, *args: Any, **kwargs: Any) -> None:
        pass


def quiet_hpack() -> AbstractContextManager[None]:
    import hpack.hpack

    return patched([(hpack.hpack, "log", _QuietLog())])


@contextmanager
def default_gc() -> Iterator[None]:
    """Python's default collector settings (a young-generation pass every 700 allocations,
    nothing frozen): what `pushing.tune_gc_for_sending()` changes in the worker."""
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if frozen:
            gc.freeze()


Patch = Callable[[], AbstractContextManager[None]]
# label: (PUSH_BATCH_SIZE or None for the app's, patches). The cached header block and the
# overlapped claim/finish, tried here first, are in the app since eebccf6 and a166776.
EXPERIMENTS: dict[str, tuple[int | None, tuple[Patch, ...]]] = {
    "as is": (None, ()),
    "as is, PUSH_BATCH_SIZE 5000": (5000, ()),
    "Python's default GC (no tune_gc_for_sending)": (None, (default_gc,)),
    "hpack's debug() calls silenced": (None, (quiet_hpack,)),
}


@contextmanager
def patched(replacements: list[tuple[Any, str, Any]]) -> Iterator[None]:
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in replacements]
    for owner, name, value in replacements:
        setattr(owner, name, value)
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


def run_experiments(bench: Bench, rounds: int) -> list[str]:
    """Every experiment once per round, interleaved so slow drift hits them all alike."""
    app, devices = bench.app, bench.devices
    default_batch = app.config["PUSH_BATCH_SIZE"]
    drains: dict[str, list[Drain]] = {label: [] for label in EXPERIMENTS}
    for number in range(1, rounds + 1):
        for label, (batch_size, makers) in EXPERIMENTS.items():
            app.config["PUSH_BATCH_SIZE"] = batch_size or default_batch
            try:
                with app.app_context(), ExitStack() as stack:
                    for make in makers:
                        stack.enter_context(make())
                    drain = drain_in_process(bench, f"{label} {number}")
            finally:
                app.config["PUSH_BATCH_SIZE"] = default_batch
            check_empty(app)
            drains[label].append(drain)
            print(describe(f"experiment round {number}: {label}", drain, devices), flush=True)
    title = f"experiment (in-process drain, median of {rounds})"
    lines = [
        f"| {title:<50} | pushes/s | {'rounds':<16} | pushes/CPU-s | GC s | others' CPU s |",
        "|----------------------------------------------------|---------:|------------------|"
        "-------------:|-----:|--------------:|",
    ]
    for label, runs in drains.items():
        rates = [devices / d.wall for d in runs]
        each = ", ".join(f"{r:.0f}" for r in rates)
        per_cpu = statistics.median(devices / d.cpu for d in runs)
        collector = statistics.median(d.collector for d in runs)
        others = max(d.others for d in runs)
        lines.append(
            f"| {label:<50} | {statistics.median(rates):8.0f} | {each:<16} | {per_cpu:12.0f} |"
            f" {collector:4.1f} | {others:13.1f} |"
        )
    return lines


# --- side measurements ----------------------------------------------------------------------


def send_only(bench: Bench) -> Drain:
    """The sender's ceiling: the same tokens pushed with no database work, warm connection."""
    from passes import pushing
    from passes.apns import ApnsClient, Outcome

    app, devices = bench.app, bench.devices
    tokens = [f"{i:064x}" for i in range(devices)]
    batch = app.config["PUSH_BATCH_SIZE"]

    async def push() -> tuple[float, float, int]:
        async with ApnsClient(pushing.apns_settings()) as client:
            await client.push(tokens[:500])  # connection open, HPACK tables filled
            start, cpu = time.perf_counter(), time.process_time()
            sent = 0
            for first in range(0, devices, batch):
                results = await client.push(tokens[first : first + batch])
                sent += sum(r.outcome is Outcome.SENT for r in results)
            return time.perf_counter() - start, time.process_time() - cpu, sent

    with app.app_context(), OtherLoad(bench.nginx_dir) as others:
        wall, cpu, sent = asyncio.run(push())
    return Drain(float("nan"), float("nan"), wall, cpu, sent, others.seconds)


def hpack_costs(calls: int = 20_000) -> dict[str, float]:
    """Microseconds per call: encoding one push's request headers with hpack's encoder, and
    decoding one answer's headers (nginx's, and what APNs sends)."""
    import hpack
    from hpack import NeverIndexedHeaderTuple as Never

    def headers(i: int) -> list[tuple[bytes, bytes]]:
        path = Never(b":path", b"/3/device/" + f"{i:064x}".encode())
        return [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":authority", b"127.0.0.1:8443"),
            path,
            (b"apns-topic", b"pass.com.example.test"),
            (b"apns-push-type", b"background"),
            (b"apns-priority", b"5"),
            (b"apns-expiration", b"1790000000"),
        ]

    def per_call(work: Callable[[int], object]) -> float:
        work(0)
        start = time.process_time()
        for i in range(calls):
            work(i)
        return (time.process_time() - start) / calls * 1e6

    encoder = hpack.Encoder()
    costs = {"encode request (hpack.Encoder)": per_call(lambda i: encoder.encode(headers(i)))}
    # nginx answers with server, date, content-type and content-length; APNs with apns-id.
    nginx = hpack.Encoder().encode(
        [
            (b":status", b"200"),
            Never(b"server", b"nginx/1.22.1"),
            Never(b"date", b"Sun, 22 Nov 2026 16:20:28 GMT"),
            Never(b"content-type", b"text/plain"),
            Never(b"content-length", b"0"),
        ]
    )
    apns = hpack.Encoder().encode(
        [(b":status", b"200"), Never(b"apns-id", b"7b3c7a6e-4ab5-4a1a-9d3e-2f1c5b0d9e8a")]
    )
    decoder = hpack.Decoder()
    costs["decode nginx's answer"] = per_call(lambda i: decoder.decode(nginx, raw=True))
    costs["decode an APNs answer"] = per_call(lambda i: decoder.decode(apns, raw=True))
    return costs


RETRY_SQL = sa.text(
    """
    UPDATE pending_pushes SET attempts = attempts + 1, claimed_until = NULL,
        due_at = :now + LEAST(:cap, :base * power(2, LEAST(attempts, 10)))
            * (0.5 + random() / 2) * interval '1 second'
    WHERE device_id = ANY(CAST(:ids AS integer[]))
    """
)


def retry_later_batch(bench: Bench, size: int) -> tuple[float, float]:
    """Seconds for `_finish` of one batch where APNs said 429 to every push, and for the same
    rescheduling as one UPDATE; the queue is emptied after."""
    from models import PendingPush, db, utcnow
    from passes import pushing
    from passes.apns import Outcome, PushResult

    def claim_and_fail() -> tuple[Any, list[Any]]:
        claimed = pushing._claim(size)
        results = [
            PushResult(token, Outcome.RETRY_LATER, 429, "TooManyRequests")
            for token in claimed.devices_by_token
        ]
        return claimed, results

    patch_pass(bench.app, bench.pass_type_identifier, "retry experiment")
    with bench.app.app_context():
        claimed, results = claim_and_fail()
        start = time.perf_counter()
        pushing._finish(claimed, results)
        today = time.perf_counter() - start
        db.session.execute(sa.update(PendingPush).values(due_at=utcnow(), claimed_until=None))
        db.session.commit()
        claimed, _ = claim_and_fail()
        start = time.perf_counter()
        db.session.execute(
            RETRY_SQL,
            {
                "now": utcnow(),
                "cap": pushing.RETRY_CAP.total_seconds(),
                "base": pushing.RETRY_BASE.total_seconds(),
                "ids": list(claimed.versions),
            },
        )
        db.session.commit()
        one_statement = time.perf_counter() - start
        db.session.execute(sa.delete(PendingPush))
        db.session.commit()
    return today, one_statement


# --- report -------------------------------------------------------------------------------


def describe(label: str, drain: Drain, devices: int) -> str:
    return (
        f"{label}: PATCH {drain.patch * 1000:5.0f} ms, drain {drain.wall:5.2f} s = "
        f"{devices / drain.wall:4.0f} pushes/s, CPU {drain.cpu:5.2f} s = "
        f"{devices / drain.cpu:4.0f} pushes/CPU-s, sent {drain.sent}, "
        f"others used {drain.others:.1f} CPU-s"
    )


def breakdown(drains: list[Drain]) -> list[str]:
    """Per phase and per SQL statement: median over rounds of wall and CPU seconds."""
    total = statistics.median(d.wall for d in drains)
    lines = [
        "| where the in-process drain's time goes (median) | calls | wall s | CPU s | of drain |",
        "|-------------------------------------------------|------:|-------:|------:|---------:|",
    ]

    def row(label: str, phases: list[Phase]) -> None:
        wall = statistics.median(p.wall for p in phases)
        cpu = statistics.median(p.cpu for p in phases)
        calls = phases[0].calls
        lines.append(
            f"| {label:<47} | {calls:5d} | {wall:6.2f} | {cpu:5.2f} | {wall / total:8.0%} |"
        )

    labels = {
        "claim": "claim (`pushing._claim`)",
        "send": "send (`ApnsClient.push`)",
        "finish": "finish (`pushing._finish`)",
    }
    for name, label in labels.items():
        row(label, [d.phases[name] for d in drains])
        for statement in sorted(k for k in drains[0].statements if k.startswith(name + ":")):
            found = [d.statements[statement] for d in drains if statement in d.statements]
            row(f"  in cursor.execute: {statement.split(': ', 1)[1]}", found)
    collector = statistics.median(d.collector for d in drains)
    lines.append(
        f"| {'cyclic GC (within the phases above)':<47} |       | {collector:6.2f} |       |"
        f" {collector / total:8.0%} |"
    )
    lines.append(
        f"| {'whole drain':<47} |       | {total:6.2f} | "
        f"{statistics.median(d.cpu for d in drains):5.2f} | {1:8.0%} |"
    )
    lines.append("(claim and finish run in a thread while batches are sent: shares overlap)")
    return lines


def summary_table(in_process: list[Drain], by_worker: list[Drain], devices: int) -> list[str]:
    rows = [
        ("PATCH latency, ms (every PATCH)", [d.patch * 1000 for d in in_process + by_worker], 0),
        (
            "  of which INSERT .. SELECT into pending_pushes, ms",
            [d.enqueue * 1000 for d in in_process],
            0,
        ),
        ("worker process: PATCH commit -> last push, s", [d.wall for d in by_worker], 2),
        ("worker process: pushes/s", [devices / d.wall for d in by_worker], 0),
        ("worker process: CPU s", [d.cpu for d in by_worker], 2),
        ("worker process: pushes per CPU-second", [devices / d.cpu for d in by_worker], 0),
        ("  CPU s used meanwhile by other processes", [d.others for d in by_worker], 1),
        ("in-process drain_now(): PATCH commit -> last push, s", [d.wall for d in in_process], 2),
        ("in-process drain_now(): pushes/s", [devices / d.wall for d in in_process], 0),
        ("in-process drain_now(): CPU s", [d.cpu for d in in_process], 2),
        ("in-process drain_now(): pushes per CPU-second", [devices / d.cpu for d in in_process], 0),
        ("  CPU s used meanwhile by other processes", [d.others for d in in_process], 1),
    ]
    lines = [
        "| figure                                               | median | rounds |",
        "|------------------------------------------------------|-------:|--------|",
    ]
    for label, values, digits in rows:
        each = ", ".join(f"{v:.{digits}f}" for v in values)
        lines.append(f"| {label:<52} | {statistics.median(values):6.{digits}f} | {each} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one in-process drain")
    parser.add_argument(
        "--experiments", action="store_true", help="try drain changes (monkeypatched here)"
    )
    parser.add_argument("--experiment-rounds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300, help="seconds allowed per drain")
    args = parser.parse_args()

    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"code: {code_version()}")
    busy = cpu_busy()
    print(f"CPU busy before the run (other processes): {busy:.0%}")
    if busy > 0.05:
        print("WARNING: the machine is not idle; figures will be low", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-push-") as tmp:
        folder = Path(tmp)
        nginx_dir = folder / "nginx"
        chain, apns_url = start_nginx(folder, nginx_dir)
        print(machine_description())  # once nginx is installed: it names its version
        try:
            os.sched_setaffinity(0, {WORKER_CPU})  # after nginx, which must not inherit it
            # The whole run is bounded; the exception still stops nginx and the worker.
            signal.signal(signal.SIGALRM, out_of_time)
            drains = (
                2 * args.rounds + 4 + args.experiments * args.experiment_rounds * len(EXPERIMENTS)
            )
            signal.alarm(int(args.timeout * drains))
            run(args, folder, chain, apns_url)
        finally:
            signal.alarm(0)
            subprocess.run([str(NGINX), "stop", str(nginx_dir)], check=True, timeout=30)
            drop_database()
    return 0


def out_of_time(signum: int, frame: Any) -> None:
    raise TimeoutError("the benchmark ran out of time")


def run(args: argparse.Namespace, folder: Path, chain: dict[str, Path], apns_url: str) -> None:
    environment = app_environment(chain, recreate_database(), apns_url)
    app = make_app(environment)
    start = time.perf_counter()
    pass_type_identifier = seed(app, args.devices)
    bench = Bench(app, pass_type_identifier, environment, folder, args.devices, args.timeout)
    devices = bench.devices
    print(f"seeded {devices} devices on one pass in {time.perf_counter() - start:.1f} s")
    from passes import pushing

    tune_gc = getattr(pushing, "tune_gc_for_sending", None)
    if tune_gc is not None:
        tune_gc()  # as `flask passes worker [--once]` does before draining
    print(f"in-process drains: garbage collector {'tuned' if tune_gc else 'at Python defaults'}")
    print(
        f"nginx on CPU {NGINX_CPU}; this process and the worker on CPU {WORKER_CPU}; "
        f"PostgreSQL unpinned (shares both); PUSH_BATCH_SIZE {app.config['PUSH_BATCH_SIZE']}, "
        f"APNS_MAX_STREAMS {app.config['APNS_MAX_STREAMS']}, "
        f"APNS_MAX_CONNECTIONS {app.config['APNS_MAX_CONNECTIONS']}"
    )

    in_process: list[Drain] = []
    by_worker: list[Drain] = []
    for number in range(1, args.rounds + 1):
        drain = drain_in_process(bench, f"round {number}")
        check_empty(app)
        in_process.append(drain)
        print(describe(f"round {number} in-process    ", drain, devices), flush=True)
        drain = drain_by_worker(bench, f"round {number} worker", folder / f"worker-{number}.log")
        check_empty(app)
        by_worker.append(drain)
        print(describe(f"round {number} worker process", drain, devices), flush=True)

    if in_process:
        print()
        print("\n".join(summary_table(in_process, by_worker, devices)))
        best = statistics.median(devices / d.wall for d in by_worker)
        verdict = "MET" if best >= GOAL else "MISSED"
        print(f"\ngoal {GOAL} pushes/s (worker process, median {best:.0f}): {verdict}\n")
        print("\n".join(breakdown(in_process)))

    ceiling = send_only(bench)
    print(
        f"\nsend only (no database, warm connection, batches of {app.config['PUSH_BATCH_SIZE']}):"
        f" {ceiling.wall:.2f} s = {devices / ceiling.wall:.0f} pushes/s, "
        f"{devices / ceiling.cpu:.0f} per CPU-second; others used {ceiling.others:.1f} CPU-s"
    )
    today, one_statement = retry_later_batch(bench, 5000)
    print(
        f"finish of a 5000-push batch all answered 429: {today:.3f} s in pushing._finish, "
        f"{one_statement:.3f} s as one UPDATE"
    )

    costs = ", ".join(f"{name} {us:.1f}" for name, us in hpack_costs().items())
    print(f"HPACK, microseconds of CPU per push: {costs}")

    if args.experiments:
        print()
        print("\n" + "\n".join(run_experiments(bench, args.experiment_rounds)))

    if args.profile:
        profiler = cProfile.Profile()
        drain_in_process(bench, "profiled", profiler)
        check_empty(app)
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(30)
        print("\ncProfile of one in-process drain (times inflated by the profiler):")
        print(out.getvalue())


def check_empty(app: Flask) -> None:
    left = pending(app)
    if left:
        raise RuntimeError(f"{left} pushes still pending after the drain")


if __name__ == "__main__":
    sys.exit(main())
