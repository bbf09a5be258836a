"""Delivery records on PostgreSQL: the push worker and the phones write the same rows at once,
and no order of their statements deadlocks (a phone's request must never be the victim)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from models import Device, Pass, Registration, db, utcnow
from passes import delivery, pushing
from passes.apns import Outcome, PushResult
from passes.tokens import authentication_token
from tests.conftest import SECRET_KEY
from tests.pushes import token
from tests.test_worker import wait_until

PASSES = 6  # a device holding several passes of one type, as a family's loyalty cards
PASS_TYPE = "pass.com.example.test"
SERIALS = f"/wallet/v1/devices/holder/registrations/{PASS_TYPE}"
APNS_ID = "00000000-0000-0000-0000-0000000000a1"


@pytest.fixture
def postgres(app: Flask) -> None:
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("SQLite runs one writing transaction at a time: nothing to deadlock")


def holder(app: Flask, passes: int = PASSES) -> tuple[int, list[int]]:
    """A device registered for `passes` passes, newest pass first, so that its registrations'
    ids run opposite to their passes' (and to the index on device_id, pass_id)."""
    with app.app_context():
        now = utcnow()
        device = Device(device_library_identifier="holder", push_token=token(1))
        db.session.add(device)
        created = [
            Pass(
                pass_type_identifier="pass.com.example.test",
                serial_number=f"card-{n}",
                data={},
                update_tag=0,
                updated_at=now,
            )
            for n in range(passes)
        ]
        db.session.add_all(created)
        db.session.flush()
        for pass_ in reversed(created):
            db.session.add(Registration(device_id=device.id, pass_id=pass_.id, created_at=now))
            db.session.flush()
        ids = list(
            db.session.scalars(
                sa.select(Registration.id).where(Registration.device_id == device.id)
            )
        )
        db.session.commit()
        return device.id, ids


def waiting_for_locks(app: Flask) -> int:
    """How many of the database's sessions wait for a lock right now."""
    with app.app_context():
        try:
            return db.session.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        finally:
            db.session.remove()


def collide(app: Flask, row: int, *sides: Callable[[], Any]) -> list[BaseException]:
    """Run the sides at once, each stopped at registration `row` (locked meanwhile by a third
    transaction, as a phone's download locks one) with the rows before it in its order
    locked, then let them go on: sides that lock in different orders now hold what the
    other needs."""
    lock = sa.select(Registration.id).where(Registration.id == row).with_for_update()
    return collide_at(app, lock, *sides)


def collide_at(app: Flask, lock: sa.Select[Any], *sides: Callable[[], Any]) -> list[BaseException]:
    """collide(), stopping the sides at the row that `lock` locks."""
    errors: list[BaseException] = []

    def run(side: Callable[[], Any]) -> None:
        try:
            side()
        except Exception as error:  # the assertion below shows what it was
            errors.append(error)

    with app.app_context(), db.engine.connect() as blocker:
        blocker.execute(lock)
        threads = [threading.Thread(target=run, args=(side,)) for side in sides]
        for thread in threads:
            thread.start()
        wait_until(lambda: waiting_for_locks(app) >= len(sides), "both sides to wait", 10)
        blocker.rollback()
    for thread in threads:
        thread.join(30)
    return errors


def test_a_push_batch_and_the_devices_serial_list_never_deadlock(
    app: Flask, postgres: None
) -> None:
    device, registrations = holder(app)
    answer = [PushResult(token(1), Outcome.SENT, 200, apns_id=APNS_ID)]

    def worker() -> None:
        with app.app_context():
            claimed = pushing._Claimed("pass.com.example.test", {device: 1}, {token(1): [device]})
            pushing._finish(db.engine, claimed, answer)

    def phone() -> None:
        status = app.test_client().get(SERIALS).status_code
        assert status == 200, status
        with app.app_context():  # the list's record, written as the recorder writes it
            delivery.recorder().flush()

    for row in registrations[1:-1]:  # each row with rows on both sides of it
        assert collide(app, row, worker, phone) == []


def test_removing_a_dead_tokens_device_and_its_serial_list_never_deadlock(
    app: Flask, postgres: None
) -> None:
    device, registrations = holder(app)
    gone = [PushResult(token(1), Outcome.DEAD_TOKEN, 410, "Unregistered")]

    def worker() -> None:
        with app.app_context():
            claimed = pushing._Claimed("pass.com.example.test", {device: 1}, {token(1): [device]})
            assert pushing._finish(db.engine, claimed, gone).removed == 1

    def phone() -> None:
        status = app.test_client().get(SERIALS).status_code
        assert status in (200, 204), status  # listed before or after its device went
        with app.app_context():
            delivery.recorder().flush()

    # Its registrations go with the device (ON DELETE CASCADE), in the cascade's own order.
    assert collide(app, registrations[PASSES // 2], worker, phone) == []


def test_a_push_batch_and_wallets_log_of_failed_downloads_never_deadlock(
    app: Flask, postgres: None
) -> None:
    device, registrations = holder(app)
    answer = [PushResult(token(1), Outcome.SENT, 200, apns_id=APNS_ID)]
    # One failed download of each pass, in either order: every order must be safe.
    logs = [
        f"Get pass task (pass type pass.com.example.test, serial number card-{n}, "
        "if-modified-since (null); with web service url https://passes.example.test/wallet) "
        "encountered error: Unexpected response code 500"
        for n in range(PASSES)
    ]

    def worker() -> None:
        with app.app_context():
            claimed = pushing._Claimed("pass.com.example.test", {device: 1}, {token(1): [device]})
            pushing._finish(db.engine, claimed, answer)

    def phone(logs: list[str]) -> Callable[[], None]:
        def post() -> None:
            status = app.test_client().post("/wallet/v1/log", json={"logs": logs}).status_code
            assert status == 200, status

        return post

    for row in registrations[1:-1]:
        for order in (logs, logs[::-1]):
            assert collide(app, row, worker, phone(order)) == []
    with app.app_context():
        errors = db.session.scalars(sa.select(Registration.fetch_error)).all()
    assert errors == ["Wallet: Unexpected response code 500"] * PASSES


def test_removing_a_dead_tokens_device_and_its_unregistering_never_deadlock(
    app: Flask, postgres: None
) -> None:
    device, registrations = holder(app)
    gone = [PushResult(token(1), Outcome.DEAD_TOKEN, 410, "Unregistered")]
    serial = f"card-{PASSES // 2}"  # registered in the middle: rows on both sides of it
    auth = {"Authorization": f"ApplePass {authentication_token(SECRET_KEY, PASS_TYPE, serial)}"}

    def worker() -> None:
        with app.app_context():
            claimed = pushing._Claimed("pass.com.example.test", {device: 1}, {token(1): [device]})
            pushing._finish(db.engine, claimed, gone)

    def phone() -> None:
        url = f"/wallet/v1/devices/holder/registrations/{PASS_TYPE}/{serial}"
        status = app.test_client().delete(url, headers=auth).status_code
        assert status == 200, status

    with app.app_context():
        row = db.session.scalar(
            sa.select(Registration.id)
            .join(Pass, Pass.id == Registration.pass_id)
            .where(Pass.serial_number == serial)
        )
    assert row in registrations
    assert collide(app, row, worker, phone) == []
