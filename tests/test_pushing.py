"""Durable push fan-out: pass changes -> pending pushes -> APNs (a real HTTP/2 TLS server)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from models import Device, PendingPush, PushOutcomeCount, Registration, db, utcnow
from passes import context, pushing, store
from passes.apns import Outcome, PushResult
from passes.certificate_chain import PASS_TYPE_IDENTIFIER
from tests.apns_server import FakeApns, Reply, send_batch
from tests.pushes import LEASE, patch, pending, seed_devices, token, wait_until
from tests.test_worker import ROOT, pushing_env


def test_a_change_is_pushed_to_every_device_with_apples_headers(
    push_app: Flask, apns: FakeApns
) -> None:
    seed_devices(push_app, 3)
    patch(push_app)
    assert pending(push_app) == 3
    result = push_app.test_cli_runner().invoke(args=["passes", "worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "sent 3" in result.output
    requests = apns.requests
    assert sorted(r.token for r in requests) == [token(i) for i in range(3)]
    for request in requests:
        assert request.method == "POST"
        assert request.path == f"/3/device/{request.token}"
        assert request.headers["apns-topic"] == "pass.com.example.test"
        assert request.headers["apns-push-type"] == "background"
        assert request.headers["apns-priority"] == "5"
        assert int(request.headers["apns-expiration"]) > time.time()
        assert request.body == b"{}"
        assert request.client_uid == "pass.com.example.test"
    assert pending(push_app) == 0
    with push_app.app_context():
        counted = db.session.scalar(
            sa.select(PushOutcomeCount.count).where(PushOutcomeCount.outcome == "sent")
        )
        assert counted == 3


def test_a_change_queueing_many_pushes_tells_the_planner_the_queue_grew(push_app: Flask) -> None:
    with push_app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("PostgreSQL's planner statistics")
        db.session.execute(sa.text("ANALYZE pending_pushes"))  # empty, as before a fan-out
        db.session.commit()
    seed_devices(push_app, store.ANALYZE_QUEUE_AT)
    patch(push_app)
    with push_app.app_context():
        # What the planner believes the queue holds: without news, the worker's claims are
        # planned for an empty table and sort the whole queue each time.
        believed = db.session.scalar(
            sa.text("SELECT reltuples FROM pg_class WHERE relname = 'pending_pushes'")
        )
    assert believed >= store.ANALYZE_QUEUE_AT


def test_a_burst_of_updates_sends_one_push_per_device(push_app: Flask, apns: FakeApns) -> None:
    seed_devices(push_app, 2)
    for value in ("a", "b", "c", "d"):
        patch(push_app, value=value)
    with push_app.app_context():
        assert pushing.drain_now().sent == 2
    assert Counter(r.token for r in apns.requests) == {token(0): 1, token(1): 1}


@pytest.mark.parametrize(
    "reply",
    [
        Reply(410, "Unregistered"),
        Reply(410, "ExpiredToken"),
        Reply(400, "BadDeviceToken"),
        Reply(400, "DeviceTokenNotForTopic"),
    ],
)
def test_dead_tokens_lose_their_registrations_and_device(
    push_app: Flask, apns: FakeApns, reply: Reply
) -> None:
    seed_devices(push_app, 2)
    apns.script(token(0), reply)
    patch(push_app)
    with push_app.app_context():
        summary = pushing.drain_now()
        assert (summary.sent, summary.removed) == (1, 1)
        assert db.session.scalars(sa.select(Device.push_token)).all() == [token(1)]
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Registration)) == 1
    assert pending(push_app) == 0


def test_a_device_that_registered_a_new_token_while_its_old_one_died_keeps_its_passes(
    push_app: Flask, apns: FakeApns
) -> None:
    seed_devices(push_app, 1)
    patch(push_app)
    with push_app.app_context():
        [claimed] = pushing._claim(db.engine, 10, LEASE, [PASS_TYPE_IDENTIFIER])
        # While the push to the old token is out, the phone (restored from a backup)
        # registers again with a new token; then APNs answers that the old one is dead.
        db.session.execute(sa.update(Device).values(push_token=token(7)))
        db.session.commit()
        dead = PushResult(token(0), Outcome.DEAD_TOKEN, 410, "Unregistered")
        assert pushing._finish(db.engine, claimed, [dead]).removed == 0
        assert db.session.scalars(sa.select(Device.push_token)).all() == [token(7)]
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Registration)) == 1
        # Its pending push is free again, and goes to the new token.
        assert pushing.drain_now().sent == 1
    assert [r.token for r in apns.requests] == [token(7)]


def test_a_change_committed_before_a_crash_is_pushed_by_the_next_worker(
    make_app: Callable[..., Flask], apns: FakeApns
) -> None:
    # The web process commits the change and dies before pushing (PUSH_MODE=off: no push).
    web = make_app(PUSH_MODE="off")
    seed_devices(web, 2)
    patch(web)
    # A worker started later, in another app, finds and sends it.
    worker = make_app(APNS_URL=apns.url, APNS_CA_FILE=apns.ca_file)
    assert worker.test_cli_runner().invoke(args=["passes", "worker", "--once"]).exit_code == 0
    assert sorted(r.token for r in apns.requests) == [token(0), token(1)]


def test_a_worker_that_died_mid_batch_leaves_its_devices_to_the_next(
    push_app: Flask, apns: FakeApns
) -> None:
    seed_devices(push_app, 3)
    patch(push_app)
    with push_app.app_context():
        # Claimed, then the process dies before sending (tests/test_worker.py kills a real one).
        [claimed] = pushing._claim(db.engine, 10, LEASE, [PASS_TYPE_IDENTIFIER])
        assert len(claimed.versions) == 3
        assert pushing.drain_now().total == 0  # the lease keeps others away meanwhile
        db.session.execute(
            sa.update(PendingPush).values(claimed_until=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
        assert pushing.drain_now().sent == 3


def test_an_update_during_sending_is_pushed_again(push_app: Flask, apns: FakeApns) -> None:
    seed_devices(push_app, 1)
    patch(push_app, value="first")
    with push_app.app_context():
        [claimed] = pushing._claim(db.engine, 10, LEASE, [PASS_TYPE_IDENTIFIER])
        patch(push_app, value="second")  # committed while the first push is in flight
        results = send_batch(
            claimed.devices_by_token,
            pushing.apns_settings(context.credentials(PASS_TYPE_IDENTIFIER)),
        )
        pushing._finish(db.engine, claimed, results)
        # The first push may have reached the phone before "second" committed: push again.
        assert pushing.pending_count() == 1
        assert pushing.drain_now().sent == 1
    assert len(apns.requests) == 2


def test_unavailable_apns_leaves_the_push_pending_for_later(
    push_app: Flask, apns: FakeApns
) -> None:
    seed_devices(push_app, 1)
    apns.script(token(0), Reply(503, "ServiceUnavailable"))
    patch(push_app)
    with push_app.app_context():
        summary = pushing.drain_now()
        assert summary.retry_later == 1
        row = db.session.scalars(sa.select(PendingPush)).one()
        assert row.attempts == 1
        assert row.due_at > utcnow()  # backed off, not dropped
        assert row.claimed_until is None


def test_a_refused_certificate_stops_and_keeps_every_push(push_app: Flask, apns: FakeApns) -> None:
    seed_devices(push_app, 3)
    for i in range(3):
        apns.script(token(i), Reply(403, "BadCertificate"))
    patch(push_app)
    result = push_app.test_cli_runner().invoke(args=["passes", "push", "pushed"])
    assert result.exit_code == 1
    assert "rejected the certificate" in result.output
    assert pending(push_app) == 3


def test_a_refused_certificate_leaves_no_device_leased(push_app: Flask, apns: FakeApns) -> None:
    # 120 devices, batches of 50: the first batch is refused, the others are never claimed.
    seed_devices(push_app, 120)
    for i in range(120):
        apns.script(token(i), Reply(403, "BadCertificate"))
    patch(push_app)
    with push_app.app_context():
        summary = pushing.drain_now()
        assert summary.certificate_rejected == "BadCertificate"
        rows = db.session.scalars(sa.select(PendingPush)).all()
    assert len(rows) == 120
    # Nothing waits out a lease: a fixed certificate can push everything straight away.
    assert [row.device_id for row in rows if row.claimed_until is not None] == []


def test_push_command_pushes_one_pass_and_all_passes(push_app: Flask, apns: FakeApns) -> None:
    seed_devices(push_app, 2, serial="one")
    seed_devices(push_app, 3, serial="two")
    runner = push_app.test_cli_runner()
    one = runner.invoke(args=["passes", "push", "one"])
    assert one.exit_code == 0, one.output
    assert "sent 2, tokens removed 0, failed 0" in one.output
    everything = runner.invoke(args=["passes", "push", "--all"])
    assert everything.exit_code == 0, everything.output
    assert "sent 5" in everything.output
    assert len(apns.requests) == 7
    assert runner.invoke(args=["passes", "push"]).exit_code == 2


def test_push_command_leaves_the_sending_to_the_workers_where_they_push(
    make_app: Callable[..., Flask], apns: FakeApns
) -> None:
    app = make_app(APNS_URL=apns.url, APNS_CA_FILE=apns.ca_file, PUSH_MODE="worker")
    seed_devices(app, 3)
    result = app.test_cli_runner().invoke(args=["passes", "push", "--all"])
    assert result.exit_code == 0, result.output
    assert "3 devices to push" in result.output
    assert "workers" in result.output
    assert apns.requests == []
    assert pending(app) == 3


def test_push_command_sends_itself_beside_an_inline_pusher(
    make_app: Callable[..., Flask], apns: FakeApns
) -> None:
    app = make_app(APNS_URL=apns.url, APNS_CA_FILE=apns.ca_file, PUSH_MODE="inline")
    seed_devices(app, 3)
    result = app.test_cli_runner().invoke(args=["passes", "push", "--all"])
    assert result.exit_code == 0, result.output
    # All of them by the command, with its progress bar; none by the inline pusher.
    assert "sent 3, tokens removed 0, failed 0" in result.output
    assert len(apns.requests) == 3
    assert pending(app) == 0


def test_a_command_in_inline_mode_pushes_before_its_process_exits(
    app: Flask, database_uri: str, chain_files: dict[str, Path], apns: FakeApns
) -> None:
    seed_devices(app, 3)
    env = pushing_env(database_uri, chain_files, apns, PUSH_MODE="inline")
    command = ["passes", "update", "pushed", "--data", '{"logoText": "from the shell"}']
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app:create_app", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # The commit started the inline pusher; the process waited for it before exiting.
    assert len(apns.requests) == 3
    assert pending(app) == 0


def test_inline_mode_pushes_right_after_the_change(
    make_app: Callable[..., Flask], apns: FakeApns
) -> None:
    app = make_app(APNS_URL=apns.url, APNS_CA_FILE=apns.ca_file, PUSH_MODE="inline")
    seed_devices(app, 2)
    patch(app)
    apns.wait_for(2, timeout=10)
    wait_until(lambda: pending(app) == 0)


def test_two_workers_drain_a_thousand_pushes_exactly_once(
    make_app: Callable[..., Flask], apns: FakeApns
) -> None:
    workers = [
        make_app(APNS_URL=apns.url, APNS_CA_FILE=apns.ca_file, PUSH_BATCH_SIZE=50) for _ in range(2)
    ]
    seed_devices(workers[0], 1000)
    patch(workers[0])
    start = threading.Barrier(2)
    summaries: list[pushing.PushSummary] = []

    def work(app: Flask) -> None:
        with app.app_context():
            start.wait(10)
            summaries.append(pushing.drain_now())
            db.session.remove()

    threads = [threading.Thread(target=work, args=(app,)) for app in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sum(s.sent for s in summaries) == 1000
    assert all(s.sent > 0 for s in summaries), "both workers should have taken batches"
    counts = Counter(r.token for r in apns.requests)
    assert len(counts) == 1000
    assert set(counts.values()) == {1}
    assert pending(workers[0]) == 0
