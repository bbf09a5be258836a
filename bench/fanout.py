"""The whole update cycle as phones live it: one change, until every phone holds it.

    python3 bench/fanout.py --scenario own-pass --phones 100000 --via pgbouncer
    python3 bench/fanout.py --scenario shared-pass --phones 20000 --via both --env PUSH_RATE=2000

Scenarios:
- own-pass: N phones, each holding its own pass; the change is `flask passes push --all` (every
  pass gets a new version; the command pushes, and so does the worker running beside it).
- shared-pass: N phones holding one pass; the change is one admin PATCH of a field, whose new
  value every phone must find in the pass it downloads.

For each scenario, on a fresh PostgreSQL database `bench_fanout` (schema by the Procfile's
release command):
1. seed: the passes (own-pass: one made through the admin API, the rest copied from its row
   in SQL), then every phone registers through the device web service and reads its serial
   list once, as Wallet does after adding a pass (bench/wallet_phones.py);
2. for each path (--via direct, pgbouncer or both): start afresh what the Procfile runs
   (`gunicorn 'app:create_app()'` with WEB_CONCURRENCY=2 and one `flask passes worker`), with
   DATABASE_URL straight to PostgreSQL or through PgBouncer in transaction mode, and the APNs
   stand-in (bench/apns_stand_in.py) in this process, which makes each pushed phone do what
   Wallet does; make the change; wait until every phone holds the new version; stop it all.
Then the baseline: as many phones (at most 20,000) against bench/bare_wallet.py under the same
gunicorn (the same two requests answered from memory), and `openssl speed rsa2048`.

Reported per scenario and path: change committed -> last phone current; device requests and
failed attempts by kind; p50/p99 device-request latency (every attempt, failed ones at the time
they took); CPU seconds of each process group over the cycle and per phone brought current, and
peak RSS (bench/process_usage.py); then the efficiency against the baseline and the web tier's
capacity. Nothing is pinned to a core: the app, PostgreSQL and this process (phones and
stand-in, whose CPU is reported too) share the machine, as would anything else running on it
("not accounted" in the output).

The clock starts when the change is committed, as seen from a connection of the benchmark's
own that reads the update counter (which every change moves) every 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/x.py` puts bench/, not the repo, on the path

from werkzeug.http import http_date  # noqa: E402

from bench import services  # noqa: E402
from bench.apns_stand_in import ApnsStandIn  # noqa: E402
from bench.common import (  # noqa: E402
    ADMIN_TOKEN,
    P12_PASSWORD,
    PER_PASS_DATA,
    PUBLIC_URL,
    SECRET_KEY,
    cpu_model,
    openssl_command,
    openssl_sign_rate,
)
from bench.process_usage import GroupUsage, Usage, UsageMeter  # noqa: E402
from bench.wallet_phones import (  # noqa: E402
    Expectation,
    Fleet,
    Phone,
    Stats,
    http_request,
    http_seconds,
)
from passes.tokens import authentication_token  # noqa: E402
from tests.apple_chain import FakeAppleChain, make_chain  # noqa: E402

OWN_PASS, SHARED_PASS = "own-pass", "shared-pass"
DATABASE = "bench_fanout"
WEB_PORT, BARE_PORT, APNS_PORT, PGBOUNCER_PORT = 8100, 8101, 8102, 6442
WEB_CONCURRENCY = 2
PUSH_ALL = "flask passes push --all"
SHARED_SERIAL = "shared"
# Phones the baseline keeps busy at once (it has no worker pushing): enough to keep its two
# gunicorn workers saturated, few enough that nothing times out.
BASELINE_IN_FLIGHT = 32
# Phones whose requests warm each server up, uncounted, before the clock starts.
WARM_UP_PHONES = 4 * WEB_CONCURRENCY
# Issue 10's goals for this benchmark.
GOAL_P99_SECONDS = 2.0
GOAL_EFFICIENCY = 0.5
GOAL_TIME_OVER_CAPACITY = 1.5

# Process groups, as reported.
WEB, WORKER, PUSH_COMMAND, PGBOUNCER = "web", "worker", "push command", "PgBouncer"
BENCH_PROCESS = "bench process (phones, APNs stand-in)"
OURS = (WEB, WORKER, PUSH_COMMAND, UsageMeter.POSTGRES)  # what the efficiency is about


def main() -> int:
    args = parse_arguments()
    raise_file_limit()
    for port in (WEB_PORT, BARE_PORT, APNS_PORT, PGBOUNCER_PORT):
        services.check_port_free(port)
    print_header(args)
    started = time.monotonic()
    try:
        asyncio.run(run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\nstopped; every process and database the run started is gone", file=sys.stderr)
        return 1
    print(f"\nthe run took {(time.monotonic() - started) / 60:.1f} min")
    return 0


async def run(args: argparse.Namespace) -> None:
    """Every scenario on every path, the baseline, the summary."""
    # SIGTERM (`timeout`, `kill`) stops the run as Ctrl-C does: through every clean-up below.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as temporary:
        bench = Bench.create(args, Path(temporary))
        results: list[CycleResult] = []
        for scenario in args.scenarios:
            with services.fresh_database(DATABASE) as database_url:
                release = bench.procfile["release"]  # flask db upgrade
                services.run_command(release, bench.app_environment(database_url), bench.log())
                seeded = await seed(bench, scenario)
                for via in args.paths:
                    result = await measure_cycle(bench, scenario, via, seeded)
                    print_cycle(result)
                    results.append(result)
        baseline = await measure_baseline(bench, seeded)
        print(f"\nopenssl: {shlex.join(openssl_command(args.openssl_seconds))}")
        signs_per_cpu_second = openssl_sign_rate(args.openssl_seconds).cpu
    print_summary(results, baseline, signs_per_cpu_second)


async def measure_cycle(bench: Bench, scenario: str, via: str, seeded: Seeded) -> CycleResult:
    """One change reaching every phone, with everything the Procfile runs started afresh."""
    fleet = seeded.fleet
    print(f"\n== {scenario} via {via}: {len(fleet.phones)} phones")
    async with AsyncExitStack() as stack:
        app = await start_app(bench, via, fleet, stack, name=f"{scenario}-{via}")
        await wait_for_next_second(fleet)

        marker = f"fanout {via} {time.time():.0f}" if scenario == SHARED_PASS else None
        fleet.expect(Expectation(marker))
        meter = UsageMeter(DATABASE, app.sessions, excluded={app.monitor.get_backend_pid()})
        meter.start()
        progress = asyncio.ensure_future(report_progress(fleet))
        commit = CommitWatch(app.monitor)
        stack.callback(commit.stop)
        if scenario == OWN_PASS:
            pusher = await push_every_pass(bench, app, meter)
        else:
            await change_shared_pass(seeded, marker or "")
            pusher = None
        committed_at = await commit.seen()
        deadline = committed_at + bench.args.deadline
        outcome = await fleet.wait_all_current(deadline, bench.args.stall)
        left_queued = await wait_for_pushing_to_end(app, pusher, deadline)
        usage = meter.stop()
        progress.cancel()
        await fleet.stop()

    if pusher is not None:
        # It ended within the window and this process reaped it: its CPU is exact.
        usage.groups.setdefault(PUSH_COMMAND, GroupUsage()).cpu_seconds = usage.reaped_children
    usage.groups[BENCH_PROCESS] = GroupUsage(usage.this_process)
    return CycleResult.of(scenario, via, fleet, committed_at, outcome, app.apns, usage, left_queued)


@dataclass
class RunningApp:
    environment: dict[str, str]
    sessions: dict[str, int]  # process group -> its session id, for the meter
    apns: ApnsStandIn
    monitor: Any  # a direct connection to watch the push queue (its backend is not counted)
    name: str


async def start_app(
    bench: Bench, via: str, fleet: Fleet, stack: AsyncExitStack, name: str
) -> RunningApp:
    """The APNs stand-in, PgBouncer (via pgbouncer), the Procfile's web and worker; all idle."""
    database_url = services.database_url(DATABASE)
    sessions = {}
    if via == "pgbouncer":
        log = bench.log(f"{name}-pgbouncer")
        bouncer = stack.enter_context(
            services.pgbouncer(
                DATABASE, PGBOUNCER_PORT, bench.args.server_lifetime, bench.args.pool_size, log
            )
        )
        await services.wait_until_listening(PGBOUNCER_PORT, bouncer, log)
        database_url = services.database_url(DATABASE, PGBOUNCER_PORT)
        sessions[PGBOUNCER] = bouncer.pid
    apns = ApnsStandIn(bench.chain, bench.folder, APNS_PORT, fleet.on_push)
    await stack.enter_async_context(apns)
    environment = bench.app_environment(database_url)
    web_log, worker_log = bench.log(f"{name}-web"), bench.log(f"{name}-worker")
    web = stack.enter_context(services.process(bench.procfile["web"], environment, web_log))
    worker = stack.enter_context(
        services.process(bench.procfile["worker"], environment, worker_log)
    )
    sessions |= {WEB: web.pid, WORKER: worker.pid}
    await services.wait_until_listening(WEB_PORT, web, web_log)
    await wait_for_line(worker_log, "worker started", worker)
    # Start-up (imports, create_app) is not the cycle: wait until it is over.
    await services.wait_until_idle(web, WEB_CONCURRENCY + 1, web_log)
    await services.wait_until_idle(worker, 1, worker_log)
    await fleet.warm_up(WARM_UP_PHONES)
    monitor = services.connect(DATABASE)
    stack.callback(monitor.close)
    return RunningApp(environment, sessions, apns, monitor, name)


# --- seeding --------------------------------------------------------------------------------


@dataclass
class Seeded:
    fleet: Fleet
    pass_type_identifier: str
    serial: str  # the shared pass, or own-pass's first
    pkpass: bytes  # that pass as the app serves it: the baseline serves these bytes


async def seed(bench: Bench, scenario: str) -> Seeded:
    """The passes, and every phone registered and holding its pass's current tag."""
    args = bench.args
    log = bench.log(f"{scenario}-seed-web")
    environment = bench.app_environment(services.database_url(DATABASE))
    with services.process(bench.procfile["web"], environment, log) as web:
        await services.wait_until_listening(WEB_PORT, web, log)
        await services.wait_until_idle(web, WEB_CONCURRENCY + 1, log)
        started = time.monotonic()
        serial = own_serial(0) if scenario == OWN_PASS else SHARED_SERIAL
        body = {"template": "storecard", "serialNumber": serial, "pass": PER_PASS_DATA}
        created = await admin("POST", "/api/passes", body)
        pass_type_identifier = created["passTypeIdentifier"]
        if scenario == OWN_PASS:
            copy_pass(serial, args.phones)
        passes = args.phones if scenario == OWN_PASS else 1
        print(f"seed: {passes} passes in {time.monotonic() - started:.1f} s")

        serial_of = own_serial if scenario == OWN_PASS else lambda _: SHARED_SERIAL
        phones = make_phones(args.phones, pass_type_identifier, created["lastModified"], serial_of)
        fleet = Fleet(phones, WEB_PORT, pass_type_identifier, args.max_connections)
        started = time.monotonic()
        await fleet.register_all(args.seed_concurrency)
        registered = time.monotonic()
        await fleet.learn_tags(args.seed_concurrency)
        print(
            f"seed: {len(phones)} phones registered in {registered - started:.1f} s, their serial "
            f"lists read in {time.monotonic() - registered:.1f} s ({args.seed_concurrency} at "
            f"once; failed attempts: {dict(fleet.stats.failures) or 'none'})"
        )
        pkpass = await admin_bytes(f"/api/passes/{pass_type_identifier}/{serial}/pkpass")
    return Seeded(fleet, pass_type_identifier, serial, pkpass)


def own_serial(number: int) -> str:
    return f"own-{number:07d}"  # as copy_pass() writes them


def copy_pass(serial: str, count: int) -> None:
    """Passes own-0000001 ... as copies of the row the admin API wrote for `serial`.

    Every column the app writes is copied (a new column will be too); each copy gets its own
    serial number, barcode and update tag, and the counter moves past the last tag.
    """
    from models import Pass

    copy_serial = "'own-' || lpad(i::text, 7, '0')"
    computed = {
        "serial_number": copy_serial,
        "data": f"jsonb_set(original.data::jsonb, '{{barcodes,0,message}}', "
        f"to_jsonb({copy_serial}))::json",
        "update_tag": "original.update_tag + i",
    }
    columns = [column.name for column in Pass.__table__.columns if not column.primary_key]
    values = [computed.get(name, f"original.{name}") for name in columns]
    connection = services.connect(DATABASE)
    try:
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(
                f"INSERT INTO passes ({', '.join(columns)}) SELECT {', '.join(values)} "
                "FROM passes AS original, generate_series(1, %s) AS i "
                "WHERE original.serial_number = %s",
                (count - 1, serial),
            )
            cursor.execute(
                "UPDATE update_counter SET value = (SELECT max(update_tag) FROM passes) "
                "WHERE id = 1"
            )
            cursor.execute("COMMIT")
            cursor.execute("ANALYZE")
    finally:
        connection.close()


def make_phones(
    count: int, pass_type_identifier: str, last_modified: str, serial_of: Callable[[int], str]
) -> list[Phone]:
    """Phones 0 .. count-1, phone n holding pass `serial_of(n)` at version `last_modified`."""
    phones = []
    for number in range(count):
        serial = serial_of(number)
        token = authentication_token(SECRET_KEY, pass_type_identifier, serial)
        phones.append(
            Phone(
                device_id=f"{number:032x}",
                push_token=f"{number:064x}",
                serial=serial,
                authorization=f"ApplePass {token}",
                last_modified=last_modified,
            )
        )
    return phones


# --- the change -----------------------------------------------------------------------------


class CommitWatch:
    """When the change became visible: a thread reads the update counter, which every change
    moves in its transaction, every 5 ms on the benchmark's own connection."""

    def __init__(self, monitor: Any) -> None:
        self.monitor = monitor
        self.before = self._counter()
        self._stopping = threading.Event()
        self._seen = asyncio.ensure_future(asyncio.to_thread(self._watch))

    async def seen(self, timeout: float = 600) -> float:
        """The monotonic time of the first read that saw the counter move."""
        return await asyncio.wait_for(self._seen, timeout)

    def stop(self) -> None:
        self._stopping.set()

    def _watch(self) -> float:
        while not self._stopping.wait(0.005):
            if self._counter() != self.before:
                return time.monotonic()
        raise RuntimeError("stopped before the change was committed")

    def _counter(self) -> int:
        with self.monitor.cursor() as cursor:
            cursor.execute("SELECT value FROM update_counter WHERE id = 1")
            return cursor.fetchone()[0]


async def push_every_pass(
    bench: Bench, app: RunningApp, meter: UsageMeter
) -> asyncio.subprocess.Process:
    """`flask passes push --all`, started; returns once it says the change is committed."""
    log = bench.log(f"{app.name}-push-command").open("ab")
    command = await asyncio.create_subprocess_exec(
        *shlex.split(PUSH_ALL),
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
        env={**os.environ, **app.environment},
        cwd=ROOT,
        start_new_session=True,
    )
    meter.add_session(PUSH_COMMAND, command.pid)  # for its peak RSS
    assert command.stdout is not None
    while line := await asyncio.wait_for(command.stdout.readline(), timeout=600):
        log.write(line)
        if b"passes marked changed" in line:
            print(f"change: {PUSH_ALL}: {line.decode().strip()}")
            asyncio.ensure_future(copy_to_log(command.stdout, log))
            return command
    raise RuntimeError(f"{PUSH_ALL} ended without committing; see {log.name}")


async def copy_to_log(output: asyncio.StreamReader, log: BinaryIO) -> None:
    while line := await output.readline():
        log.write(line)
    log.close()


async def change_shared_pass(seeded: Seeded, marker: str) -> None:
    """One admin PATCH of the member's name; every phone must then find `marker` in its pass."""
    member = [{"key": "member", "label": "MEMBER", "value": marker}]
    path = f"/api/passes/{seeded.pass_type_identifier}/{seeded.serial}"
    described = await admin("PATCH", path, {"pass": {"storeCard": {"secondaryFields": member}}})
    print(f"change: PATCH of the shared pass, member {marker!r}, {described['lastModified']}")


async def wait_for_pushing_to_end(
    app: RunningApp, pusher: asyncio.subprocess.Process | None, deadline: float
) -> int:
    """Until the pushers have recorded what they sent (part of the cycle's CPU): the push
    command exits, the queue empties. Returns the pushes still queued after that."""
    if pusher is not None:
        try:
            await asyncio.wait_for(pusher.wait(), timeout=max(10, deadline - time.monotonic()))
        except TimeoutError:
            print(f"  {PUSH_ALL} still running at the deadline: stopped")
            pusher.kill()
            await pusher.wait()

    def queued() -> int:
        with app.monitor.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pending_pushes")
            return cursor.fetchone()[0]

    give_up = time.monotonic() + 30
    while (left := await asyncio.to_thread(queued)) and time.monotonic() < give_up:
        await asyncio.sleep(0.2)
    return left


# --- the baseline ---------------------------------------------------------------------------


@dataclass
class BaselineResult:
    phones: int
    current: int
    seconds: float
    stats: Stats
    web: GroupUsage
    bench_cpu: float

    @property
    def cpu_per_phone(self) -> float:
        return self.web.cpu_seconds / max(1, self.current)


async def measure_baseline(bench: Bench, seeded: Seeded) -> BaselineResult:
    """Phones updating from bench/bare_wallet.py under the same gunicorn, kept busy
    BASELINE_IN_FLIGHT at a time (no worker pushes them)."""
    count = bench.args.baseline_phones
    print(f"\n== baseline: bench/bare_wallet.py under the same gunicorn, {count} phones")
    command = bench.procfile["web"].replace("app:create_app()", "bench.bare_wallet:create_app()")
    if command == bench.procfile["web"]:
        raise RuntimeError("the Procfile's web command no longer names app:create_app()")
    now = time.time()
    package = bench.folder / "bare.pkpass"
    package.write_bytes(seeded.pkpass)
    environment = {
        **bench.web_environment(BARE_PORT),
        "BARE_PKPASS": str(package),
        "BARE_SERIAL": seeded.serial,
        "BARE_LAST_MODIFIED": http_date(now),
    }
    # Holding a version from the day before, of the pass the bare app serves.
    phones = make_phones(
        count, seeded.pass_type_identifier, http_date(now - 86400), lambda _: seeded.serial
    )
    fleet = Fleet(phones, BARE_PORT, seeded.pass_type_identifier, bench.args.max_connections)
    log = bench.log("baseline-web")
    with services.process(command, environment, log) as web:
        await services.wait_until_listening(BARE_PORT, web, log)
        await services.wait_until_idle(web, WEB_CONCURRENCY + 1, log)
        await fleet.warm_up(WARM_UP_PHONES)
        fleet.expect(Expectation())
        meter = UsageMeter(DATABASE, {WEB: web.pid})
        meter.start()
        started = time.monotonic()
        fleet.wake_all(BASELINE_IN_FLIGHT)
        outcome = await fleet.wait_all_current(started + bench.args.deadline, bench.args.stall)
        usage = meter.stop()
        await fleet.stop()
    last = max((p.current_at for p in phones if p.current_at is not None), default=started)
    result = BaselineResult(
        count, fleet.current, last - started, fleet.stats, usage.groups[WEB], usage.this_process
    )
    stats = result.stats
    print(
        f"{outcome}: {result.current}/{count} phones in {result.seconds:.1f} s; "
        f"{stats.attempts} requests, failed attempts {dict(stats.failures) or 'none'}; "
        f"latency p50 {stats.percentile(0.5):.3f} s, p99 {stats.percentile(0.99):.3f} s\n"
        f"  web CPU {result.web.cpu_seconds:.2f} s = {1000 * result.cpu_per_phone:.3f} ms per "
        f"phone; {BENCH_PROCESS} {result.bench_cpu:.2f} s"
    )
    return result


# --- what every step shares -----------------------------------------------------------------


@dataclass
class Bench:
    """The options, the fake Apple chain, the Procfile, where files and logs go."""

    args: argparse.Namespace
    chain: FakeAppleChain
    chain_files: dict[str, Path]
    folder: Path
    logs: Path
    procfile: dict[str, str]

    @classmethod
    def create(cls, args: argparse.Namespace, folder: Path) -> Bench:
        chain = make_chain()
        return cls(
            args=args,
            chain=chain,
            chain_files=chain.write(folder / "chain", password=P12_PASSWORD.encode()),
            folder=folder,
            logs=Path(args.logs).resolve() if args.logs else folder / "logs",
            procfile=services.procfile_commands(),
        )

    def app_environment(self, database_url: str) -> dict[str, str]:
        """What a production dyno is given, plus the --env settings under test."""
        environment = {
            "APP_ENV": "production",
            "SECRET_KEY": SECRET_KEY,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "PUBLIC_URL": PUBLIC_URL,
            "DATABASE_URL": database_url,
            "PASS_CERTIFICATE": str(self.chain_files["pass_p12"]),
            "PASS_CERTIFICATE_PASSWORD": P12_PASSWORD,
            "WWDR_CERTIFICATE": str(self.chain_files["wwdr"]),
            "APNS_URL": f"https://127.0.0.1:{APNS_PORT}",
            "APNS_CA_FILE": str(self.chain_files["root"]),
            "PUSH_MODE": "worker",
            **self.web_environment(WEB_PORT),
        }
        return {**environment, **self.args.env}

    @staticmethod
    def web_environment(port: int) -> dict[str, str]:
        # gunicorn would bind 0.0.0.0:$PORT if PORT were set; the bench stays on 127.0.0.1.
        return {
            "WEB_CONCURRENCY": str(WEB_CONCURRENCY),
            "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port}",
        }

    def log(self, name: str = "release") -> Path:
        self.logs.mkdir(parents=True, exist_ok=True)
        return self.logs / f"{name}.log"


async def admin(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = await http_request(WEB_PORT, method, path, admin_headers(), json.dumps(body).encode())
    if reply.status not in (200, 201):
        raise RuntimeError(f"{method} {path}: {reply.status} {reply.body[:500]!r}")
    return json.loads(reply.body)


async def admin_bytes(path: str) -> bytes:
    reply = await http_request(WEB_PORT, "GET", path, admin_headers())
    if reply.status != 200:
        raise RuntimeError(f"GET {path}: {reply.status}")
    return reply.body


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}


async def wait_for_line(log: Path, text: str, child: subprocess.Popen, timeout: float = 60) -> None:
    """Until `text` appears in the log of `child` (a worker saying it is up)."""
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        if child.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{child.args}: no {text!r} in its log\n{services.tail(log)}")
        await asyncio.sleep(0.1)


async def wait_for_next_second(fleet: Fleet) -> None:
    """HTTP dates have whole seconds: the new version must not share one with what phones hold."""
    newest = max(http_seconds(phone.last_modified) for phone in fleet.phones)
    await asyncio.sleep(max(0.0, newest + 1 - time.time()))


async def report_progress(fleet: Fleet, every: float = 10) -> None:
    started = time.monotonic()
    while True:
        await asyncio.sleep(every)
        stats = fleet.stats
        print(
            f"  {time.monotonic() - started:5.0f} s: pushed {fleet.pushed}, current "
            f"{fleet.current}, requests {stats.attempts}, failed {sum(stats.failures.values())}",
            flush=True,
        )


def raise_file_limit() -> None:
    """Every phone on the wire holds a file descriptor: take all this process may have."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def code_version() -> str:
    def git(*arguments: str) -> str:
        return subprocess.run(
            ["git", *arguments], cwd=ROOT, capture_output=True, text=True, check=False, timeout=30
        ).stdout.strip()

    return f"{git('describe', '--always', '--dirty', '--tags')} ({git('log', '-1', '--format=%s')})"


# --- results and output ---------------------------------------------------------------------


@dataclass
class CycleResult:
    scenario: str
    via: str
    phones: int
    changed_passes: int
    outcome: str
    current: int
    seconds: float  # change committed -> last phone current
    last_push_after: float  # change committed -> the last phone's first push
    pushes: int
    repeated_pushes: int
    unknown_pushes: int
    refused_pushes: int  # requests to the stand-in that were not POST /3/device/<token>
    stats: Stats
    usage: Usage
    left_queued: int
    versions_held: Counter[str]  # Last-Modified -> phones holding it, of the current ones

    @classmethod
    def of(
        cls,
        scenario: str,
        via: str,
        fleet: Fleet,
        committed_at: float,
        outcome: str,
        apns: ApnsStandIn,
        usage: Usage,
        left_queued: int,
    ) -> CycleResult:
        current = [phone for phone in fleet.phones if phone.current_at is not None]
        pushed = [phone.pushed_at for phone in fleet.phones if phone.pushed_at is not None]
        last_current = max((phone.current_at or 0.0 for phone in current), default=committed_at)
        return cls(
            scenario=scenario,
            via=via,
            phones=len(fleet.phones),
            changed_passes=len(fleet.phones) if scenario == OWN_PASS else 1,
            outcome=outcome,
            current=len(current),
            seconds=last_current - committed_at,
            last_push_after=max(pushed, default=committed_at) - committed_at,
            pushes=apns.pushes,
            repeated_pushes=fleet.repeated_pushes,
            unknown_pushes=fleet.pushes_for_unknown_tokens,
            refused_pushes=apns.refused,
            stats=fleet.stats,
            usage=usage,
            left_queued=left_queued,
            versions_held=Counter(phone.last_modified for phone in current),
        )

    def cpu(self, group: str) -> float:
        usage = self.usage.groups.get(group)
        return usage.cpu_seconds if usage else 0.0

    @property
    def ours_cpu(self) -> float:
        return sum(self.cpu(group) for group in OURS)

    @property
    def failed(self) -> int:
        return sum(self.stats.failures.values())


def print_header(args: argparse.Namespace) -> None:
    procfile = services.procfile_commands()
    print(f"command: {shlex.join(['python3', *sys.argv])}")
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}; Python {platform.python_version()}")
    print(f"code: {code_version()}")
    print(
        f"web: {procfile['web']}, WEB_CONCURRENCY={WEB_CONCURRENCY}; worker: {procfile['worker']}"
        f"; extra environment: {args.env or 'none'}"
    )
    print(f"PostgreSQL: {services.postgres_settings()}")
    if "pgbouncer" in args.paths:
        print(
            f"PgBouncer: {services.PGBOUNCER}, pool_mode = transaction, server_round_robin = 1, "
            f"server_lifetime = {args.server_lifetime}, default_pool_size = {args.pool_size}"
        )
    print(
        f"phones: {args.phones} per scenario, {args.baseline_phones} for the baseline; at most "
        f"{args.max_connections} connections at once; {args.deadline:.0f} s per cycle at most"
    )


def print_cycle(result: CycleResult) -> None:
    stats, usage, phones = result.stats, result.usage, max(1, result.current)
    print(f"{result.outcome}: {result.current}/{result.phones} phones current")
    print(
        f"  change committed -> last phone current: {result.seconds:.2f} s "
        f"(-> last phone's first push: {result.last_push_after:.2f} s)"
    )
    print(
        f"  pushes received: {result.pushes} ({result.repeated_pushes} repeated, "
        f"{result.unknown_pushes} to unknown tokens, {result.refused_pushes} refused); "
        f"still queued at the end: {result.left_queued}"
    )
    print(f"  versions held (Last-Modified: phones current): {dict(result.versions_held)}")
    requests = ", ".join(f"{kind} x{count}" for kind, count in sorted(stats.requests.items()))
    print(f"  device requests: {stats.attempts} ({requests})")
    failures = ", ".join(f"{kind} x{count}" for kind, count in stats.failures.most_common())
    print(f"  failed attempts: {failures or 'none'}; requests given up: {stats.gave_up}")
    print(
        f"  latency per device request: p50 {stats.percentile(0.5):.3f} s, "
        f"p99 {stats.percentile(0.99):.3f} s, max {max(stats.latencies, default=0):.3f} s "
        f"(longest wait for one of this process's connections: "
        f"{stats.longest_wait_for_connection:.3f} s)"
    )
    print(
        f"  CPU over the cycle ({usage.seconds:.1f} s): seconds, ms per phone current; "
        "peak RSS: largest process / all"
    )
    groups = [
        WEB,
        WORKER,
        PUSH_COMMAND,
        UsageMeter.POSTGRES,
        PGBOUNCER,
        BENCH_PROCESS,
        UsageMeter.POSTGRES_BACKGROUND,
    ]
    for name in groups:
        group = usage.groups.get(name)
        if group is not None:
            print(f"    {usage_line(name, group.cpu_seconds, phones)}  {rss(group)}")
    print(f"    {usage_line('ours: web + pushing + PostgreSQL', result.ours_cpu, phones)}")
    accounted = sum(group.cpu_seconds for group in usage.groups.values())
    print(
        f"  machine: {usage.machine_busy:.1f} of {usage.machine_total:.1f} CPU seconds busy; "
        f"{usage.machine_busy - accounted:.1f} s not accounted above (anything else running)"
    )


def usage_line(name: str, seconds: float, phones: int) -> str:
    return f"{name:<38} {seconds:8.2f} s {1000 * seconds / phones:8.3f} ms"


def rss(group: GroupUsage) -> str:
    if not group.processes:
        return ""
    return (
        f"{group.largest_rss_kib / 1024:5.0f} MB / {group.total_rss_kib / 1024:5.0f} MB "
        f"({group.processes} processes)"
    )


def print_summary(
    results: list[CycleResult], baseline: BaselineResult, signs_per_cpu_second: float
) -> None:
    cores = os.cpu_count() or 1
    print(
        f"\nopenssl speed rsa2048: {signs_per_cpu_second:.0f} signatures per CPU second "
        f"({1000 / signs_per_cpu_second:.3f} ms each); baseline: "
        f"{1000 * baseline.cpu_per_phone:.3f} ms of bare web CPU per phone"
    )
    print(
        "efficiency = phones current per CPU second of ours (web + pushing + PostgreSQL)\n"
        "           / phones per CPU second of the baseline (bare requests, plus one RSA-2048 "
        "signature per changed pass)\n"
        "capacity = cores / CPU seconds per phone of everything the cycle runs (web, pushing,\n"
        "  PostgreSQL, PgBouncer, and this process's phones and APNs stand-in, which share the\n"
        "  machine here); time ratio = seconds / (phones / capacity), i.e. 1 / how busy the\n"
        "  cores were with the cycle: above 1, time went by with cores idle (pacing too slow)\n"
        "  or busy with something else\n"
    )
    print(
        "| scenario    | via       | phones | current | seconds | failed | p99 s | ours ms/phone "
        "| baseline ms/phone | efficiency | capacity, phones/s | time ratio |"
    )
    print(
        "|-------------|-----------|-------:|--------:|--------:|-------:|------:|--------------:"
        "|------------------:|-----------:|-------------------:|-----------:|"
    )
    verdicts = []
    for result in results:
        phones = max(1, result.current)
        ours = result.ours_cpu / phones
        bare = baseline.cpu_per_phone + (result.changed_passes / phones) / signs_per_cpu_second
        efficiency = bare / ours if ours else float("nan")
        cycle_per_phone = (
            result.ours_cpu + result.cpu(PGBOUNCER) + result.cpu(BENCH_PROCESS)
        ) / phones
        capacity = cores / cycle_per_phone if cycle_per_phone else float("inf")
        time_ratio = result.seconds / (result.phones / capacity)
        p99 = result.stats.percentile(0.99)
        print(
            f"| {result.scenario:<11} | {result.via:<9} | {result.phones:6d} | "
            f"{result.current:7d} | {result.seconds:7.1f} | {result.failed:6d} | {p99:5.2f} | "
            f"{1000 * ours:13.3f} | {1000 * bare:17.3f} | {efficiency:10.2f} | "
            f"{capacity:18.0f} | {time_ratio:10.2f} |"
        )
        goals = {
            "every phone current": result.current == result.phones,
            "no failed request": result.failed == 0,
            f"p99 < {GOAL_P99_SECONDS:.0f} s": p99 < GOAL_P99_SECONDS,
            f"efficiency >= {GOAL_EFFICIENCY}": efficiency >= GOAL_EFFICIENCY,
            f"time ratio <= {GOAL_TIME_OVER_CAPACITY}": time_ratio <= GOAL_TIME_OVER_CAPACITY,
        }
        marks = ", ".join(f"{goal} {'met' if met else 'MISSED'}" for goal, met in goals.items())
        verdicts.append(f"goals, {result.scenario} via {result.via}: {marks}")
    print("\n" + "\n".join(verdicts))


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--scenario", choices=[OWN_PASS, SHARED_PASS, "both"], default="both")
    add("--phones", type=int, default=2000)
    add("--via", choices=["direct", "pgbouncer", "both"], default="both")
    add(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment for the app's processes, e.g. PUSH_RATE=2000 (repeatable)",
    )
    add("--baseline-phones", type=int, help="default: --phones, at most 20000")
    add("--seed-concurrency", type=int, default=16, help="phones registering at once")
    add(
        "--max-connections",
        type=int,
        help="phone requests on the wire at once (default: what the fd limit allows, <= 16000)",
    )
    add("--deadline", type=float, help="seconds per cycle (default: 300 + 0.02 per phone)")
    add("--stall", type=float, default=30, help="end a cycle after this long with no progress")
    add("--server-lifetime", type=int, default=10, help="PgBouncer's, in seconds")
    add("--pool-size", type=int, default=20, help="PgBouncer's default_pool_size")
    add("--openssl-seconds", type=int, default=3)
    add("--logs", help="keep the processes' logs in this folder (default: deleted)")
    args = parser.parse_args()
    args.scenarios = [OWN_PASS, SHARED_PASS] if args.scenario == "both" else [args.scenario]
    args.paths = ["direct", "pgbouncer"] if args.via == "both" else [args.via]
    pairs = [item.partition("=") for item in args.env]
    if any(not name or not equals for name, equals, _ in pairs):
        parser.error("--env takes NAME=VALUE")
    args.env = {name: value for name, _, value in pairs}
    if args.phones < 1:
        parser.error("--phones must be at least 1")
    args.baseline_phones = args.baseline_phones or min(args.phones, 20000)
    if args.max_connections is None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        args.max_connections = max(100, min(16000, hard - 2000))
    args.deadline = args.deadline or 300 + 0.02 * args.phones
    return args


if __name__ == "__main__":
    sys.exit(main())
