"""The push worker as production treats it: killed, stopped by signals, cut off from its
database. Real `flask passes worker` processes, real signals, a real PgBouncer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from models import PendingPush, db, utcnow
from passes import outages, pushing
from tests.apns_server import NO_ANSWER, OK, FakeApns
from tests.conftest import process_env
from tests.pgbouncer import PgBouncer
from tests.pushes import patch, pending, seed_devices, token

ROOT = Path(__file__).resolve().parent.parent
PGBOUNCER_PORT = 6441


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


class Worker:
    """`flask passes worker` in a process of its own, its output in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "app:create_app", "passes", "worker"],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    @property
    def output(self) -> str:
        return self.log.read_text()

    def stop(self, signum: int, timeout: float = 15.0) -> int:
        """Send `signum`; the exit status, once it exited (fails after `timeout` seconds)."""
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker still running {timeout:g} s after {signum}") from None


def pushing_env(
    database_uri: str, chain_files: dict[str, Path], apns: FakeApns, **settings: object
) -> dict[str, str]:
    """A production process's environment that pushes to the fake APNs, unpaced unless a
    test paces it (tests/test_pacing.py)."""
    unpaced = {"PUSH_RATE": 0, "PUSH_QUEUE_SECONDS": 0}
    return process_env(
        database_uri,
        chain_files,
        APNS_URL=apns.url,
        APNS_CA_FILE=apns.ca_file,
        **(unpaced | settings),
    )


@pytest.fixture
def start_worker(
    database_uri: str, chain_files: dict[str, Path], apns: FakeApns, tmp_path: Path
) -> Iterator[Callable[..., Worker]]:
    """Start workers against the test database and the fake APNs; killed after the test."""
    workers: list[Worker] = []

    def start(**settings: object) -> Worker:
        env = pushing_env(
            database_uri, chain_files, apns, PUSH_MODE="worker", PUSH_POLL_SECONDS=0.1, **settings
        )
        worker = Worker(env, tmp_path / f"worker-{len(workers) + 1}.log")
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait(10)


def leases(app: Flask) -> dict[int, datetime]:
    """claimed_until of every device some worker holds."""
    with app.app_context():
        rows = db.session.execute(
            sa.select(PendingPush.device_id, PendingPush.claimed_until).where(
                PendingPush.claimed_until.is_not(None)
            )
        ).all()
        db.session.remove()
    return dict(rows)


def hold_first_answers(apns: FakeApns, count: int) -> None:
    """APNs keeps the first push to each device waiting forever, and answers the next."""
    for i in range(count):
        apns.script(token(i), NO_ANSWER, OK)


def test_a_killed_worker_holds_its_batch_only_for_its_lease(
    app: Flask, apns: FakeApns, start_worker: Callable[..., Worker]
) -> None:
    seed_devices(app, 25)
    patch(app)
    hold_first_answers(apns, 25)
    first = start_worker(PUSH_BATCH_SIZE=10, PUSH_LEASE_SECONDS=3)
    held = {request.token for request in apns.wait_for(10, timeout=60)}
    for i in range(25):
        if token(i) not in held:
            apns.script(token(i), OK)  # only the killed worker's batch waits for its answers
    claimed = leases(app)
    assert len(claimed) == 10  # one batch at a time
    # While APNs keeps it waiting, the worker renews its lease rather than letting it lapse.
    first_expiry = max(claimed.values())
    wait_until(lambda: min(leases(app).values()) > first_expiry, "the lease to be renewed")

    first.process.kill()  # SIGKILL: no chance to hand anything back
    first.process.wait(10)
    lease = timedelta(seconds=3)
    assert all(until <= utcnow() + lease for until in leases(app).values())

    second = start_worker(PUSH_BATCH_SIZE=10, PUSH_LEASE_SECONDS=3)
    wait_until(lambda: pending(app) == 0, "the second worker to push everything")
    assert second.process.poll() is None
    pushes = Counter(request.token for request in apns.requests)
    assert set(pushes) == {token(i) for i in range(25)}  # nothing lost
    # Pushed twice: exactly the batch that was in flight when the first worker died.
    assert {t for t, n in pushes.items() if n > 1} == held
    assert max(pushes.values()) == 2


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_worker_hands_back_its_batch_and_exits_0(
    push_app: Flask, apns: FakeApns, start_worker: Callable[..., Worker], signum: int
) -> None:
    app = push_app
    seed_devices(app, 10)
    patch(app)
    hold_first_answers(apns, 10)
    # A lease of ten minutes: only a hand-back lets another worker send these soon.
    worker = start_worker(PUSH_BATCH_SIZE=10, PUSH_LEASE_SECONDS=600)
    apns.wait_for(10, timeout=60)
    assert len(leases(app)) == 10

    assert worker.stop(signum) == 0, worker.output
    assert "handed back 10 devices" in worker.output
    assert leases(app) == {}
    assert pending(app) == 10
    with app.app_context():
        assert pushing.drain_now().sent == 10  # another worker, at once
    assert Counter(request.token for request in apns.requests) == {token(i): 2 for i in range(10)}


def test_a_worker_stopped_between_batches_records_the_one_it_sent(
    push_app: Flask, apns: FakeApns
) -> None:
    seed_devices(push_app, 120)  # batches of 50
    patch(push_app)

    async def drain_one_batch() -> pushing.PushSummary:
        stop = asyncio.Event()
        async with pushing.apns_clients() as clients:
            drainer = pushing.Drainer.from_config(clients, push_app.config, stop=stop)
            return await drainer.drain(progress=lambda pushed: stop.set())

    with push_app.app_context():
        assert asyncio.run(drain_one_batch()).sent == 50
    assert pending(push_app) == 70
    assert leases(push_app) == {}


class RefusingPort:
    """Accepts connections on a port and closes them at once, counting them: a pooler that is
    restarting, or a host with no database behind it."""

    def __init__(self, port: int) -> None:
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", port))
        self._thread = threading.Thread(target=self._refuse, daemon=True)
        self._thread.start()

    def _refuse(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            connection.close()
            self.connections += 1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(10)


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"), reason="PgBouncer stands in front of PostgreSQL"
)
def test_a_worker_rides_out_a_pgbouncer_restart(
    app: Flask, apns: FakeApns, database_uri: str, start_worker: Callable[..., Worker]
) -> None:
    seed_devices(app, 300)
    patch(app)
    with PgBouncer(PGBOUNCER_PORT, database_uri) as bouncer:
        # Paced (20 pushes every 0.2 s), so that the outage falls in the middle of the work.
        worker = start_worker(
            DATABASE_URL=bouncer.url, PUSH_BATCH_SIZE=20, PUSH_RATE=100, PUSH_LEASE_SECONDS=3
        )
        apns.wait_for(40, timeout=60)
        bouncer.stop()
        down = RefusingPort(PGBOUNCER_PORT)
        try:
            wait_until(lambda: down.connections >= 3, "the worker to try three times")
        finally:
            down.close()
        assert worker.process.poll() is None, worker.output  # it waited, it did not exit
        bouncer.start()
        wait_until(lambda: pending(app) == 0, "every push once PgBouncer is back")
        assert worker.stop(signal.SIGTERM) == 0, worker.output

    pushes = Counter(request.token for request in apns.requests)
    assert set(pushes) == {token(i) for i in range(300)}  # nothing lost
    # At least once: what was sent and not yet recorded may go twice, at most one batch.
    assert sum(n - 1 for n in pushes.values()) <= 20
    output = worker.output
    assert output.count("database unavailable") == 1, output  # once per outage, not per try
    assert "database back after" in output
    assert "worker stopped: sent 300," in output
    assert "Traceback" not in output
    assert not any(token(i) in output for i in range(300))  # no bound values in the log
    assert "[parameters" not in output


def test_an_outage_is_logged_once_and_waits_longer_each_try(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="passes.outages")
    outage = outages.Outage()
    error = sa.exc.OperationalError("SELECT 1", {"token": "secret"}, Exception("refused"))
    waits = [outage.failed(error) for _ in range(8)]
    outage.over()
    outage.over()  # nothing more to say
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0] == "database unavailable, pushes wait until it is back: refused"
    assert messages[1].startswith("database back after")
    assert len(messages) == 2
    # Doubling from half a second (with jitter down to half), up to the cap.
    ceilings = [min(outages.OUTAGE_MAX_WAIT, 0.5 * 2**n) for n in range(8)]
    assert all(c / 2 <= w <= c for w, c in zip(waits, ceilings, strict=True))
    assert waits[-1] >= outages.OUTAGE_MAX_WAIT / 2
