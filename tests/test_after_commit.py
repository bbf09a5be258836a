"""Work queued in the session runs after its commit, once, and never after a rollback."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask

from models import Pass, WebhookMessage, db
from passes import after_commit, background, store, webhooks
from tests.conftest import ADMIN_TOKEN
from tests.pushes import patch, pending, seed_devices
from tests.test_worker import wait_until


class Calls:
    """Stands in for the inline pusher: what is under test is when it is called."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def pusher_app(make_app: Callable[..., Flask]) -> tuple[Flask, Calls]:
    app = make_app()
    calls = Calls()
    app.extensions["pass_server"].inline_pusher = calls
    return app, calls


def test_a_committed_change_starts_the_pusher_once(pusher_app: tuple[Flask, Calls]) -> None:
    app, calls = pusher_app
    seed_devices(app, 2)
    patch(app)
    assert calls.count == 1
    assert pending(app) == 2


def test_a_change_that_is_refused_starts_no_pusher(pusher_app: tuple[Flask, Calls]) -> None:
    app, calls = pusher_app
    seed_devices(app, 2)
    response = app.test_client().patch(
        "/api/passes/pass.com.example.test/pushed",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        json={"pass": {"backgroundColor": "pink"}},
    )
    assert response.status_code == 422
    assert calls.count == 0


def test_a_rolled_back_change_runs_no_job(pusher_app: tuple[Flask, Calls]) -> None:
    app, calls = pusher_app
    seed_devices(app, 2)
    with app.app_context():
        store.update_pass("pass.com.example.test", "pushed", data={"logoText": "kept?"})
        db.session.rollback()
        # The next transaction commits: the rolled-back one's job must not ride along.
        db.session.execute(sa.select(Pass.id)).all()
        db.session.commit()
        assert calls.count == 0
    assert pending(app) == 0


def test_a_closed_session_forgets_its_jobs(pusher_app: tuple[Flask, Calls]) -> None:
    app, calls = pusher_app
    seed_devices(app, 1)
    with app.app_context():
        store.update_pass("pass.com.example.test", "pushed", data={"logoText": "kept?"})
        db.session.close()  # what the end of a request does to work never committed
        db.session.execute(sa.select(Pass.id)).all()
        db.session.commit()
    assert calls.count == 0


def test_jobs_wait_for_the_outer_commit_not_a_savepoint(app: Flask) -> None:
    ran: list[str] = []
    with app.app_context():
        db.session.execute(sa.select(Pass.id)).all()
        with db.session.begin_nested():
            after_commit.queue("note", lambda: ran.append("note"))
            after_commit.queue("note", lambda: ran.append("note"))  # once per name
        assert ran == []  # the savepoint is released, nothing is kept yet
        db.session.commit()
        assert ran == ["note"]


def test_a_rolled_back_savepoint_keeps_the_outer_transactions_jobs(app: Flask) -> None:
    ran: list[str] = []
    with app.app_context():
        db.session.execute(sa.select(Pass.id)).all()
        after_commit.queue("outer", lambda: ran.append("outer"))
        nested = db.session.begin_nested()
        nested.rollback()
        db.session.commit()
        assert ran == ["outer"]


def test_a_failing_job_leaves_the_commit_and_the_other_jobs_alone(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    def fail() -> None:
        raise RuntimeError("webhook down")

    with app.app_context():
        db.session.execute(sa.select(Pass.id)).all()
        after_commit.queue("failing", fail)
        after_commit.queue("next", lambda: ran.append("next"))
        db.session.commit()
    assert ran == ["next"]
    assert "after-commit job 'failing' failed" in caplog.text


def test_webhook_delivery_starts_after_the_commit_and_never_after_a_rollback(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(
        WEBHOOK_URL="https://hooks.example.test/in", WEBHOOK_SECRET="a-plain-secret-of-enough-bytes"
    )
    calls = Calls()
    app.extensions["pass_server"].deliver_webhooks = calls
    with app.app_context():
        webhooks.emit(db.session, [webhooks.Event("pass.registered", "pass.x", "kept")])
        db.session.rollback()
        assert calls.count == 0
        webhooks.emit(db.session, [webhooks.Event("pass.registered", "pass.x", "kept")])
        db.session.commit()
        assert calls.count == 1
        db.session.execute(sa.delete(WebhookMessage))
        db.session.commit()


def running(name: str) -> int:
    return sum(thread.name == name for thread in threading.enumerate())


def test_a_stopped_job_takes_one_last_look_and_naps_no_more() -> None:
    looks: list[float] = []

    def job() -> float:
        looks.append(time.monotonic())
        return 3600.0  # something is due in an hour: a nap that stopping must not wait out

    rerun = background.Rerun(job, "napping job")
    rerun()
    wait_until(lambda: looks, "the first look")
    assert running("napping job") == 1
    rerun.stop()
    assert len(looks) == 2  # woken for one last look ...
    assert running("napping job") == 0  # ... and ended, within the stop
    rerun()  # asked again after the stop: one look, no nap
    wait_until(lambda: len(looks) == 3 and running("napping job") == 0, "one more look")
