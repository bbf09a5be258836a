"""The dashboard's delivery views: states, timelines and the doctor on the pass page; the
overview's charts. Pages as HTML here; in a real Chromium in tests/test_browser_delivery.py."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from models import PushOutcomeCount, Registration, db, utcnow
from passes import pushing, store
from passes.dashboard import DOCTOR_DEVICES
from tests.apns_server import FakeApns, Reply
from tests.conftest import ADMIN_TOKEN
from tests.delivery_phones import create_pass, phone
from tests.pushes import patch, seed_devices
from tests.test_dashboard import sign_in


@pytest.fixture
def signed_in(push_app: Flask) -> FlaskClient:
    browser = push_app.test_client()
    assert sign_in(browser, ADMIN_TOKEN).status_code == 302  # type: ignore[attr-defined]
    return browser


def prepare_deliveries(app: Flask, apns: FakeApns, serial: str) -> None:
    """Three devices: one downloads after the push, one is refused, one sleeps."""
    create_pass(app, serial)
    fine, refused, sleepy = phone(app, 1), phone(app, 2), phone(app, 3)
    for device in (fine, refused, sleepy):
        device.register(serial)
    apns.script(refused.push_token, Reply(400, "TopicDisallowed"))
    patch(app, serial)
    with app.app_context():
        pushing.drain_now()
    fine.woken()


def test_the_pass_page_shows_each_devices_state_timeline_and_first_broken_link(
    push_app: Flask, apns: FakeApns, signed_in: FlaskClient
) -> None:
    prepare_deliveries(push_app, apns, "shown")
    html = signed_in.get("/admin/passes/pass.com.example.test/shown").get_data(as_text=True)
    states = re.findall(r'<span class="state state-(\w+)">', html)
    assert states[:3] == ["current", "failing", "woken"]  # the table, oldest device first
    assert "First broken link: <strong>device phone-0002</strong>" in html
    assert "400 TopicDisallowed" in html
    for step in ("registered", "pushed", "listed", "fetched"):
        assert f"</time>{step}" in html
    assert re.search(r"apns-id [0-9a-f-]{36}", html)


def test_the_overview_draws_its_charts_as_inline_svg(
    push_app: Flask, apns: FakeApns, signed_in: FlaskClient
) -> None:
    prepare_deliveries(push_app, apns, "charted")
    with push_app.app_context():
        yesterday = (utcnow() - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
        db.session.add(PushOutcomeCount(hour=yesterday, outcome="sent", count=40))
        db.session.commit()
    response = signed_in.get("/admin/overview")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.count("<svg") == 3
    assert "Pushes per hour by outcome" in html
    assert "Installs and removals per day" in html
    assert "Time from push to download" in html
    assert re.search(r"<strong>1</strong>active passes", html)
    assert re.search(r"<strong>3</strong>devices registered", html)
    # The sleepy device was pushed and has not downloaded; the refused one was not accepted.
    assert re.search(r"<strong>1</strong>pushed, not downloaded yet", html)
    assert ": sent 41</title>" not in html  # hours are bars of their own
    assert re.search(r": sent 40</title>", html) and re.search(r": sent 2</title>", html)
    assert re.search(r": installs 3</title>", html)
    assert re.search(r"&lt;10s: devices 1</title>", html)
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_pass_page_examines_the_first_devices_and_says_what_it_left_out(
    push_app: Flask, signed_in: FlaskClient
) -> None:
    held_by = DOCTOR_DEVICES + 3
    seed_devices(push_app, held_by, "crowded")
    with push_app.app_context():  # the newest device holds an old version
        pass_ = store.get_pass("pass.com.example.test", "crowded")
        pass_.update_tag = 5
        newest = db.session.scalar(sa.select(sa.func.max(Registration.id)))
        db.session.execute(
            sa.update(Registration).where(Registration.id == newest).values(fetched_tag=4)
        )
        db.session.commit()
    html = signed_in.get("/admin/passes/pass.com.example.test/crowded").get_data(as_text=True)
    assert (
        f"The first {DOCTOR_DEVICES} devices registered hold the\n  current version; "
        "the 3 registered since were not examined here." in html
    )
    assert f"which examines all {held_by} devices" in html
    assert f"{held_by} registered; of the first {DOCTOR_DEVICES} registered" in html
    # The command line examines every device, and finds the one left out above.
    result = push_app.test_cli_runner().invoke(args=["passes", "doctor", "crowded"])
    assert result.exit_code == 1
    assert f"device device-{held_by - 1}:" in result.output
    assert f"{held_by} registered: {held_by - 1} current, 1 woken" in result.output
