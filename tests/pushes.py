"""Push test helpers: a fake APNs and an app that pushes to it, devices holding a pass.

Fixtures `apns` and `push_app` (a plugin of tests/conftest.py); helpers for the tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from models import Device, Pass, Registration, db, utcnow
from passes import pushing
from tests.apns_server import FakeApns
from tests.apple_chain import FakeAppleChain
from tests.conftest import ADMIN_TOKEN


@pytest.fixture
def apns(chain: FakeAppleChain, tmp_path: Path) -> Iterator[FakeApns]:
    with FakeApns(chain, tmp_path) as server:
        yield server


@pytest.fixture
def push_app(make_app: Callable[..., Flask], apns: FakeApns) -> Flask:
    return make_app(APNS_URL=apns.url, APNS_CA_FILE=apns.ca_file, PUSH_BATCH_SIZE=50)


LEASE = timedelta(seconds=30)  # for tests that claim by hand


def token(index: int) -> str:
    return f"{index:064x}"


def seed_devices(app: Flask, count: int, serial: str = "pushed") -> None:
    """A pass held by `count` devices, written directly: the protocol is tested elsewhere."""
    with app.app_context():
        now = utcnow()
        pass_ = Pass(
            pass_type_identifier="pass.com.example.test",
            serial_number=serial,
            template="storecard",
            data={},
            update_tag=0,
            updated_at=now,
        )
        db.session.add(pass_)
        db.session.flush()
        first = db.session.scalar(sa.select(sa.func.count()).select_from(Device)) or 0
        db.session.execute(
            sa.insert(Device),
            [
                {
                    "device_library_identifier": f"device-{first + i}",
                    "push_token": token(first + i),
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(count)
            ],
        )
        ids = db.session.scalars(
            sa.select(Device.id).where(
                Device.push_token.in_([token(first + i) for i in range(count)])
            )
        ).all()
        db.session.execute(
            sa.insert(Registration),
            [{"device_id": d, "pass_id": pass_.id, "created_at": now} for d in ids],
        )
        db.session.commit()


def patch(app: Flask, serial: str = "pushed", value: str = "changed") -> None:
    response = app.test_client().patch(
        f"/api/passes/pass.com.example.test/{serial}",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        json={"pass": {"logoText": value}},
    )
    assert response.status_code == 200, response.get_json()


def pending(app: Flask) -> int:
    with app.app_context():
        return pushing.pending_count()


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.01)
