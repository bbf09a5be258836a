"""Delivery tracking: each device's record and state, through the real web service and APNs."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from models import Device, Pass, Registration, RegistrationEventCount, db, utcnow
from passes import delivery, pushing
from passes.delivery import SILENT_AFTER, Delivery, State, delivery_state
from tests.apns_server import FakeApns, Reply
from tests.conftest import process_env
from tests.delivery_phones import PASS_TYPE, Phone, create_pass, phone, record, states
from tests.pushes import patch
from tests.test_metrics import ROOT, answers, free_port
from tests.test_worker import wait_until

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(hours=1)


def facts(**changes: object) -> Delivery:
    base: dict[str, object] = {
        "pass_tag": 7,
        "pass_updated_at": EARLIER,
        "registered_at": EARLIER - timedelta(days=1),
        "push_queued": False,
    }
    return Delivery(**{**base, **changes})  # type: ignore[arg-type]


def changed_pass_held_by(app: Flask, serial: str, first_phone: int, count: int) -> list[Phone]:
    """`count` phones, numbered from `first_phone`, hold the pass `serial`; then it changes."""
    create_pass(app, serial)
    phones = [phone(app, first_phone + n) for n in range(count)]
    for device in phones:
        device.register(serial)
    patch(app, serial)
    return phones


@pytest.mark.parametrize(
    ("changes", "state"),
    [
        ({"pass_updated_at": EARLIER - timedelta(days=2)}, State.CURRENT),  # unchanged since
        ({"fetched_tag": 7, "fetched_at": NOW}, State.CURRENT),
        ({"push_queued": True}, State.WAITING),
        ({"pushed_at": EARLIER, "push_outcome": "sent", "push_status": 200}, State.WOKEN),
        (
            {"pushed_at": EARLIER, "push_outcome": "sent", "listed_at": NOW, "listed_tag": 7},
            State.WOKEN,
        ),
        ({"pushed_at": EARLIER, "push_outcome": "failed", "push_status": 400}, State.FAILING),
        (
            {"fetched_tag": 6, "fetched_at": EARLIER, "fetch_failed_at": NOW},
            State.FAILING,
        ),
        ({"fetched_tag": 7, "fetched_at": NOW, "fetch_failed_at": EARLIER}, State.CURRENT),
        (
            {"pushed_at": NOW - SILENT_AFTER - timedelta(seconds=1), "push_outcome": "sent"},
            State.SILENT,
        ),
        (
            {
                "pushed_at": NOW - SILENT_AFTER - timedelta(hours=1),
                "push_outcome": "sent",
                "listed_at": NOW - timedelta(hours=2),
            },
            State.WOKEN,  # it asked after the push: alive, just not fetched
        ),
        ({"pushed_at": NOW - SILENT_AFTER, "push_outcome": "sent"}, State.WOKEN),
    ],
)
def test_the_state_rule(changes: dict[str, object], state: State) -> None:
    assert delivery_state(facts(**changes), NOW) is state


def test_a_push_then_a_fetch_moves_a_device_from_waiting_to_woken_to_current(
    push_app: Flask, apns: FakeApns
) -> None:
    create_pass(push_app, "journey")
    iphone, ipad = phone(push_app, 1), phone(push_app, 2)
    assert iphone.register("journey") == 201
    assert ipad.register("journey") == 201
    assert states(push_app, "journey") == {"phone-0001": "current", "phone-0002": "current"}

    patch(push_app, "journey")
    assert set(states(push_app, "journey").values()) == {"waiting"}

    with push_app.app_context():
        assert pushing.drain_now().sent == 2
    assert set(states(push_app, "journey").values()) == {"woken"}
    pushed = record(push_app, "journey", "phone-0001")
    assert (pushed.push_outcome, pushed.push_status, pushed.push_reason) == ("sent", 200, None)
    assert pushed.apns_id and len(pushed.apns_id) == 36  # the id APNs answered with
    assert pushed.pushed_tag == pushed.pass_tag

    assert iphone.woken() == ["journey"]
    assert states(push_app, "journey") == {"phone-0001": "current", "phone-0002": "woken"}
    fetched = record(push_app, "journey", "phone-0001")
    assert fetched.fetched_tag == fetched.pass_tag
    assert fetched.listed_tag == int(iphone.tag or 0)
    assert fetched.fetched_at and fetched.pushed_at and fetched.fetched_at >= fetched.pushed_at

    # The iPad only lists for now: still woken, and the download that follows is its own.
    assert ipad.list_changed() == ["journey"]
    assert states(push_app, "journey")["phone-0002"] == "woken"
    assert ipad.fetch("journey") == 200
    assert set(states(push_app, "journey").values()) == {"current"}


def test_a_refused_push_shows_failing_with_apns_reason(push_app: Flask, apns: FakeApns) -> None:
    create_pass(push_app, "refused")
    device = phone(push_app, 3)
    device.register("refused")
    apns.script(device.push_token, Reply(400, "TopicDisallowed"))
    patch(push_app, "refused")
    with push_app.app_context():
        assert pushing.drain_now().failed == 1
    assert states(push_app, "refused") == {"phone-0003": "failing"}
    refused = record(push_app, "refused", "phone-0003")
    assert (refused.push_outcome, refused.push_status, refused.push_reason) == (
        "failed",
        400,
        "TopicDisallowed",
    )


def test_a_download_wallet_reports_as_failed_shows_failing(push_app: Flask) -> None:
    create_pass(push_app, "broken")
    device = phone(push_app, 4)
    device.register("broken")
    patch(push_app, "broken")
    assert device.list_changed() == ["broken"]
    message = (
        "[2026-11-30 12:00:00 +0000] Get pass task (pass type pass.com.example.test, serial "
        "number broken, if-modified-since (null); with web service url "
        "https://passes.example.test/wallet) encountered error: Unexpected response code 500"
    )
    response = device.client.post("/wallet/v1/log", json={"logs": [message]})
    assert response.status_code == 200
    assert states(push_app, "broken") == {"phone-0004": "failing"}
    assert record(push_app, "broken", "phone-0004").fetch_error == (
        "Wallet: Unexpected response code 500"
    )
    assert device.fetch("broken") == 200  # the next download that works clears it
    assert states(push_app, "broken") == {"phone-0004": "current"}


def test_a_download_this_server_fails_shows_failing_with_its_reason(
    push_app: Flask, make_app: Callable[..., Flask]
) -> None:
    create_pass(push_app, "unsigned")
    device = phone(push_app, 9)
    device.register("unsigned")
    patch(push_app, "unsigned")
    assert device.list_changed() == ["unsigned"]
    # The same database served by a process that lost its certificate.
    broken = make_app(PASS_CERTIFICATE=None, WWDR_CERTIFICATE=None)
    device.client = broken.test_client()
    assert device.fetch("unsigned") == 503
    assert states(push_app, "unsigned") == {"phone-0009": "failing"}
    failure = record(push_app, "unsigned", "phone-0009").fetch_error
    assert failure.startswith("server: No pass certificate is configured")


def test_a_not_modified_answer_counts_as_holding_the_version(push_app: Flask) -> None:
    create_pass(push_app, "same")
    device = phone(push_app, 5)
    device.register("same")
    patch(push_app, "same")
    assert device.list_changed() == ["same"]
    url = "/wallet/v1/passes/pass.com.example.test/same"
    headers = device._auth("same")
    last_modified = device.client.head(url, headers=headers).headers["Last-Modified"]
    # The HEAD above was credited already; a list naming it again wants another download.
    assert device.list_changed() == []
    response = device.client.get(url, headers={**headers, "If-Modified-Since": last_modified})
    assert response.status_code in (200, 304)
    assert states(push_app, "same") == {"phone-0005": "current"}


def test_registrations_and_removals_are_counted_per_hour(push_app: Flask, apns: FakeApns) -> None:
    create_pass(push_app, "counted")
    kept, leaving, dead = phone(push_app, 6), phone(push_app, 7), phone(push_app, 8)
    for device in (kept, leaving, dead):
        assert device.register("counted") == 201
    assert kept.register("counted") == 200  # again: not a new install
    url = f"/wallet/v1/devices/{leaving.library_id}/registrations/pass.com.example.test/counted"
    assert leaving.client.delete(url, headers=leaving._auth("counted")).status_code == 200
    apns.script(dead.push_token, Reply(410, "Unregistered"))
    patch(push_app, "counted")
    with push_app.app_context():
        assert pushing.drain_now().removed == 1
        counts = dict(
            db.session.execute(
                sa.select(RegistrationEventCount.event, RegistrationEventCount.count)
            ).all()
        )
    assert counts == {"registered": 3, "unregistered": 1, "removed": 1}


def test_phones_downloading_one_pass_at_once_are_each_credited_once(push_app: Flask) -> None:
    phones = changed_pass_held_by(push_app, "crowd", first_phone=100, count=12)
    for device in phones:
        assert device.list_changed() == ["crowd"]
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda device: device.fetch("crowd"), phones))
    assert answers == [200] * len(phones)
    assert set(states(push_app, "crowd").values()) == {"current"}


def listed_at(app: Flask, library_id: str) -> datetime | None:
    with app.app_context():
        value = db.session.scalar(
            sa.select(Registration.listed_at)
            .join(Device, Device.id == Registration.device_id)
            .where(Device.device_library_identifier == library_id)
        )
        db.session.remove()
    return value


def test_device_requests_leave_their_records_to_a_batch_written_within_a_second(
    push_app: Flask,
) -> None:
    create_pass(push_app, "batched")
    device = phone(push_app, 300)
    device.register("batched")
    with push_app.app_context():
        recorder = delivery.recorder()
        recorder.flush()
    # The serial list writes nothing itself (no flush can run meanwhile) ...
    with recorder._flushing:
        assert device.list_changed() == ["batched"]
        assert listed_at(push_app, device.library_id) is None
    # ... the recorder's thread does, within a flush interval (no reader flushed it).
    wait_until(
        lambda: listed_at(push_app, device.library_id) is not None,
        "the recorder's thread to write the list",
        timeout=10,
    )


# Where no database answers: a recorder's flush fails as in an outage.
UNREACHABLE = "postgresql+psycopg2://nobody@127.0.0.1:9/none"


def registered_phone(app: Flask, serial: str, number: int) -> tuple[Phone, int]:
    """A phone registered for a new pass `serial`, and the id of its registration."""
    create_pass(app, serial)
    device = phone(app, number)
    device.register(serial)
    with app.app_context():
        registration = db.session.scalar(sa.select(Registration.id))
        db.session.remove()
    return device, registration


def test_records_survive_a_flush_that_fails(
    push_app: Flask, make_app: Callable[..., Flask]
) -> None:
    device, registration = registered_phone(push_app, "kept", 301)
    recorder = delivery.Recorder(sa.create_engine(UNREACHABLE))
    recorder.listed([registration], [registration], 5)
    with pytest.raises(sa.exc.OperationalError):
        recorder.flush()  # the database is unreachable: nothing is lost ...
    with push_app.app_context():
        recorder.engine = db.engine
    recorder.flush()  # ... and the next flush writes it
    assert listed_at(push_app, device.library_id) is not None
    with push_app.app_context():
        row = db.session.get(Registration, registration)
        assert (row.listed_tag, row.named_at is not None) == (5, True)
        db.session.remove()
    recorder.stop()


def test_the_recorders_thread_rides_out_an_outage_with_one_warning(
    push_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    device, registration = registered_phone(push_app, "outage", 302)
    recorder = delivery.Recorder(sa.create_engine(UNREACHABLE))
    caplog.set_level(logging.INFO, logger="passes.outages")
    recorder.listed([registration], [registration], 5)  # starts the recorder's thread
    wait_until(lambda: recorder.outage.failures >= 3, "three failed flushes", timeout=30)
    with push_app.app_context():
        recorder.engine = db.engine  # the database is back
    wait_until(lambda: recorder.outage.failures == 0, "a flush that succeeds", timeout=30)
    assert listed_at(push_app, device.library_id) is not None  # nothing was lost
    messages = [record.getMessage() for record in caplog.records]
    # One warning as the outage began and one line as it ended, not one a flush.
    assert len([m for m in messages if m.startswith("database unavailable, delivery")]) == 1
    assert len([m for m in messages if m.startswith("database back after")]) == 1
    recorder.stop()


def test_stopping_the_recorder_writes_what_it_holds_and_ends_its_thread(push_app: Flask) -> None:
    device, registration = registered_phone(push_app, "stopped", 303)
    with push_app.app_context():
        recorder = delivery.Recorder(db.engine)
    recorder.FLUSH_SECONDS = 3600.0  # its thread would not write for an hour: the stop does
    before = set(threading.enumerate())
    recorder.listed([registration], [registration], 5)
    (thread,) = set(threading.enumerate()) - before
    recorder.stop()
    assert listed_at(push_app, device.library_id) is not None
    assert not thread.is_alive()
    recorder.listed([registration], [], 6)  # recorded after the stop: no thread starts ...
    assert set(threading.enumerate()) <= before | {thread}
    recorder.flush()  # ... a reader's flush writes it
    with push_app.app_context():
        assert db.session.get(Registration, registration).listed_tag == 6
        db.session.remove()


def test_a_web_process_stopped_by_sigterm_writes_the_records_it_holds(
    push_app: Flask, database_uri: str, chain_files: dict[str, Path], tmp_path: Path
) -> None:
    create_pass(push_app, "last-words")
    device = phone(push_app, 304)
    device.register("last-words")
    port = free_port()
    env = process_env(database_uri, chain_files, PUSH_MODE="off", WEB_CONCURRENCY=1, PORT=port)
    # The Procfile's web process, with the recorder's thread writing once an hour: what the
    # database gets before then, the stop wrote.
    start = (
        "from passes import delivery; delivery.Recorder.FLUSH_SECONDS = 3600; "
        "from gunicorn.app.wsgiapp import run; run()"
    )
    with (tmp_path / "gunicorn.log").open("wb") as log:
        web = subprocess.Popen(
            [sys.executable, "-c", start, "app:create_app()"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}/wallet/v1/devices/{device.library_id}/registrations/"
            wait_until(lambda: answers(url + PASS_TYPE), "gunicorn to serve", timeout=60)
            assert listed_at(push_app, device.library_id) is None  # held by the web process
            web.send_signal(signal.SIGTERM)  # what Heroku sends at every deploy
            assert web.wait(30) == 0
        finally:
            web.kill()
    output = (tmp_path / "gunicorn.log").read_text()
    assert listed_at(push_app, device.library_id) is not None, output


def test_downloads_in_one_batch_credit_as_many_waiting_devices(push_app: Flask) -> None:
    phones = changed_pass_held_by(push_app, "many", first_phone=310, count=5)
    for device in phones[:3]:
        assert device.list_changed() == ["many"]
        assert device.fetch("many") == 200
    found = states(push_app, "many")  # one flush: three lists, then three downloads
    assert sorted(found.values()) == ["current"] * 3 + ["waiting"] * 2
    assert {found[device.library_id] for device in phones[:3]} == {"current"}


def fetched_tags(app: Flask, serial: str) -> list[int | None]:
    """The registrations' credited downloads, read as they are (no recorder flushes)."""
    with app.app_context():
        found = db.session.scalars(
            sa.select(Registration.fetched_tag)
            .join(Pass, Pass.id == Registration.pass_id)
            .where(Pass.serial_number == serial)
        ).all()
        db.session.remove()
    return list(found)


@pytest.fixture
def downloading(push_app: Flask) -> Iterator[delivery.Recorder]:
    """Another web process's recorder, which answers the downloads; stopped with the test."""
    with push_app.app_context():
        recorder = delivery.Recorder(db.engine)
    yield recorder
    recorder.stop()


@contextmanager
def recording_with(app: Flask, recorder: delivery.Recorder) -> Iterator[None]:
    """Requests made inside are recorded by `recorder`: another web process's."""
    own = app.extensions["deliveries"]
    app.extensions["deliveries"] = recorder
    try:
        yield
    finally:
        app.extensions["deliveries"] = own


def test_a_download_written_before_its_list_by_another_process_waits_for_it(
    push_app: Flask, downloading: delivery.Recorder
) -> None:
    # Two web processes: one answers the serial lists, the other the downloads, and the
    # second's recorder writes first. Two phones: the pass has no only holder to fall to.
    phones = changed_pass_held_by(push_app, "two-processes", first_phone=320, count=2)
    listing = push_app.extensions["deliveries"]
    listing.flush()
    recorded_from = utcnow()
    with listing._flushing:  # the listing process has not written its lists yet
        for device in phones:
            assert device.list_changed() == ["two-processes"]
        with recording_with(push_app, downloading):
            assert [device.fetch("two-processes") for device in phones] == [200, 200]
        downloading.flush(keep_unmatched_since=recorded_from)
        assert fetched_tags(push_app, "two-processes") == [None, None]  # kept, not lost
    listing.flush()
    downloading.flush(keep_unmatched_since=recorded_from)
    assert set(states(push_app, "two-processes").values()) == {"current"}
    with push_app.app_context():
        waiting = sa.select(sa.func.count()).where(Registration.named_at.is_not(None))
        assert db.session.scalar(waiting) == 0  # no phone left "named, not downloaded"
        db.session.remove()


def test_a_download_no_list_named_goes_to_the_only_holder_once_none_can_come(
    push_app: Flask,
) -> None:
    # Wallet refreshing a pass on its own asks for it without a serial list first.
    create_pass(push_app, "refreshed")
    device = phone(push_app, 330)
    device.register("refreshed")
    recorder = push_app.extensions["deliveries"]
    before = utcnow()
    assert device.fetch("refreshed") == 200
    after = utcnow()
    recorder.flush(keep_unmatched_since=before)  # another process's list may yet come
    assert fetched_tags(push_app, "refreshed") == [None]
    recorder.flush(keep_unmatched_since=after)  # waited long enough: none will
    assert fetched_tags(push_app, "refreshed") != [None]


def test_a_list_written_after_the_download_that_answered_it_leaves_nothing_waiting(
    push_app: Flask, downloading: delivery.Recorder
) -> None:
    # The phone's earlier list named the pass and no download followed, so the download is
    # credited at once; the list before it, from another process, is written after.
    create_pass(push_app, "answered")
    device = phone(push_app, 340)
    device.register("answered")
    listing = push_app.extensions["deliveries"]
    assert device.list_changed() == ["answered"]  # named, never downloaded
    listing.flush()
    patch(push_app, "answered")
    with listing._flushing:
        assert device.list_changed() == ["answered"]
        with recording_with(push_app, downloading):
            assert device.fetch("answered") == 200
        downloading.flush()
    listing.flush()
    assert states(push_app, "answered") == {device.library_id: "current"}
    with push_app.app_context():
        assert db.session.scalar(sa.select(Registration.named_at)) is None
        db.session.remove()


def test_a_list_no_download_followed_does_not_take_a_later_phones_download(
    push_app: Flask,
) -> None:
    switched_off, held = changed_pass_held_by(push_app, "stale", first_phone=350, count=2)
    assert switched_off.list_changed() == ["stale"]  # and then nothing: switched off
    push_app.extensions["deliveries"].flush()
    assert held.woken() == ["stale"]  # its list, then its download
    found = states(push_app, "stale")
    assert found[held.library_id] == "current"
    assert found[switched_off.library_id] != "current"


def test_a_download_is_not_credited_to_a_list_made_after_it(push_app: Flask) -> None:
    # A crowd of one pass: the first phone has listed and downloaded, the second has only
    # listed since, and the recorder writes all three at once.
    first, second = changed_pass_held_by(push_app, "in-order", first_phone=360, count=2)
    recorder = push_app.extensions["deliveries"]
    with recorder._flushing:  # no flush between the three requests
        assert first.list_changed() == ["in-order"]
        assert first.fetch("in-order") == 200
        assert second.list_changed() == ["in-order"]
    found = states(push_app, "in-order")
    assert found[first.library_id] == "current"
    assert found[second.library_id] != "current"


def test_downloads_of_one_version_in_one_flush_are_credited_near_their_own_moments(
    push_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pacing reads when phones called back from these moments: a crowd's downloads all
    # credited at the flush's last one looked like a queue at the web tier.
    early, late = changed_pass_held_by(push_app, "crowd", first_phone=370, count=2)
    start = utcnow() + timedelta(seconds=1)
    now = start
    monkeypatch.setattr(delivery, "utcnow", lambda: now)  # the recorder's thread reads it too
    recorder = push_app.extensions["deliveries"]
    with recorder._flushing:  # one flush for the four requests
        for device, listed_after in ((early, 0.0), (late, 0.7)):
            now = start + timedelta(seconds=listed_after)
            assert device.list_changed() == ["crowd"]
            now += timedelta(seconds=0.01)
            assert device.fetch("crowd") == 200
    monkeypatch.undo()
    recorder.flush()
    fetched = {
        device.library_id: record(push_app, "crowd", device.library_id).fetched_at
        for device in (early, late)
    }
    assert start + timedelta(seconds=0.01) <= fetched[early.library_id]
    assert fetched[early.library_id] <= start + timedelta(seconds=0.01) + delivery.CREDIT_STEP
    assert fetched[late.library_id] == start + timedelta(seconds=0.71)
