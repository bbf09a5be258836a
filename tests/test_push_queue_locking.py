"""The push queue on PostgreSQL: an admin's change queueing pushes and the worker finishing a
batch write the same pending_pushes rows at once, and no order of theirs deadlocks (the
admin's request must never be the victim)."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask

from models import Device, Pass, PendingPush, Registration, db, utcnow
from passes import pushing
from passes.apns import Outcome, PushResult
from tests.pushes import patch, token
from tests.test_delivery_locking import collide_at, postgres  # noqa: F401 (a fixture)

DEVICES = 8
PASS_TYPE = "pass.com.example.test"


def shared_pass(app: Flask) -> list[int]:
    """A pass held by DEVICES devices, each with a push pending (version 1), registered
    newest device first, so that the registrations run opposite to the devices' ids."""
    with app.app_context():
        now = utcnow()
        pass_ = Pass(
            pass_type_identifier=PASS_TYPE,
            serial_number="shared",
            template="storecard",
            data={},
            update_tag=0,
            updated_at=now,
        )
        devices = [
            Device(device_library_identifier=f"phone-{n}", push_token=token(n + 1))
            for n in range(DEVICES)
        ]
        db.session.add_all([pass_, *devices])
        db.session.flush()
        for device in reversed(devices):
            db.session.add(Registration(device_id=device.id, pass_id=pass_.id, created_at=now))
            db.session.add(
                PendingPush(
                    device_id=device.id,
                    pass_type_identifier=PASS_TYPE,
                    version=1,
                    attempts=0,
                    due_at=now,
                    created_at=now,
                )
            )
            db.session.flush()
        db.session.commit()
        return sorted(device.id for device in devices)


def test_queueing_pushes_and_finishing_a_batch_never_deadlock(
    app: Flask,
    postgres: None,  # noqa: F811
) -> None:
    devices = shared_pass(app)
    answers = [PushResult(token(n + 1), Outcome.SENT, 200) for n in range(DEVICES)]

    def worker() -> None:
        with app.app_context():
            claimed = pushing._Claimed(
                PASS_TYPE,
                dict.fromkeys(devices, 1),
                {token(n + 1): [d] for n, d in enumerate(devices)},
            )
            pushing._finish(db.engine, claimed, answers)

    def admin() -> None:
        patch(app, serial="shared")  # asserts a 200

    for device in devices[1:-1]:  # each row with rows on both sides of it
        lock = sa.select(PendingPush.device_id).where(PendingPush.device_id == device)
        assert collide_at(app, lock.with_for_update(), worker, admin) == []
    with app.app_context():
        # Whatever went first, every device still has the newest change to fetch.
        assert db.session.scalar(sa.select(sa.func.count()).select_from(PendingPush)) == DEVICES
