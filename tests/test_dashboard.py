"""The admin dashboard: sign-in, CSRF, pages, and the push and void buttons."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from models import (
    DashboardSession,
    Device,
    DeviceLogEntry,
    Pass,
    PendingPush,
    PushOutcomeCount,
    Registration,
    db,
)
from passes import dashboard
from tests.conftest import ADMIN_TOKEN, Admin
from tests.test_webservice import PUSH_TOKEN, register

PASS_TYPE = "pass.com.example.test"


@pytest.fixture
def dash_app(make_app: Callable[..., Flask], app: Flask) -> Flask:
    """A fresh app on the shared database, for its own session cookies."""
    return make_app()


@pytest.fixture
def browser(dash_app: Flask) -> FlaskClient:
    """A browser that has not signed in."""
    return dash_app.test_client()


@pytest.fixture
def signed_in(browser: FlaskClient) -> FlaskClient:
    response = sign_in(browser, ADMIN_TOKEN)
    assert response.status_code == 302
    return browser


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def sign_in(browser: FlaskClient, token: str, url: str = "/admin/login") -> object:
    form = browser.get("/admin/login").get_data(as_text=True)
    return browser.post(url, data={"token": token, "csrf_token": csrf_of(form)})


def detail_url(serial: str) -> str:
    return f"/admin/passes/{PASS_TYPE}/{serial}"


def current(serial: str, dash_app: Flask) -> tuple[int, bool]:
    """(update tag, voided) as stored."""
    with dash_app.app_context():
        pass_ = db.session.scalars(sa.select(Pass).filter_by(serial_number=serial)).one()
        return pass_.update_tag, pass_.data.get("voided") is True


def pending_pushes(dash_app: Flask) -> int:
    with dash_app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(PendingPush)) or 0


def test_every_page_requires_signing_in(browser: FlaskClient, admin: Admin) -> None:
    admin.create_pass(serialNumber="dash-1")
    for url in ["/admin/", detail_url("dash-1"), "/admin/logs", "/admin/pushes"]:
        response = browser.get(url)
        assert response.status_code == 302, url
        assert response.headers["Location"].startswith("/admin/login?next=")
    login = browser.get("/admin/login")
    assert login.status_code == 200
    assert 'type="password"' in login.get_data(as_text=True)


def test_a_wrong_token_is_refused(browser: FlaskClient) -> None:
    response = sign_in(browser, "not-the-token")
    assert response.status_code == 401
    assert "not the admin token" in response.get_data(as_text=True)
    assert browser.get("/admin/").status_code == 302


def test_the_right_token_signs_in_and_returns_to_the_page_asked_for(
    browser: FlaskClient, admin: Admin
) -> None:
    admin.create_pass(serialNumber="dash-2")
    response = sign_in(browser, ADMIN_TOKEN, f"/admin/login?next={detail_url('dash-2')}")
    assert response.headers["Location"] == detail_url("dash-2")
    assert browser.get(detail_url("dash-2")).status_code == 200


def test_login_never_redirects_off_the_dashboard(browser: FlaskClient) -> None:
    response = sign_in(browser, ADMIN_TOKEN, "/admin/login?next=https://evil.example/admin/")
    assert response.headers["Location"] == "/admin/"


def test_login_without_the_csrf_token_is_refused(browser: FlaskClient) -> None:
    browser.get("/admin/login")
    response = browser.post("/admin/login", data={"token": ADMIN_TOKEN})
    assert response.status_code == 400
    assert browser.get("/admin/").status_code == 302


def test_sign_out_ends_the_session(signed_in: FlaskClient) -> None:
    page = signed_in.get("/admin/").get_data(as_text=True)
    response = signed_in.post("/admin/logout", data={"csrf_token": csrf_of(page)})
    assert response.status_code == 302
    assert signed_in.get("/admin/").status_code == 302


def test_a_copy_of_the_cookie_stops_working_after_sign_out(
    signed_in: FlaskClient, dash_app: Flask
) -> None:
    cookie = signed_in.get_cookie("session")
    assert cookie is not None
    copy = dash_app.test_client()  # a stolen cookie, or one the browser kept
    copy.set_cookie("session", cookie.value)
    assert copy.get("/admin/").status_code == 200
    page = signed_in.get("/admin/").get_data(as_text=True)
    assert signed_in.post("/admin/logout", data={"csrf_token": csrf_of(page)}).status_code == 302
    response = copy.get("/admin/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login")
    with dash_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(DashboardSession)) == 0


def test_a_session_ends_after_twelve_hours(signed_in: FlaskClient, dash_app: Flask) -> None:
    assert signed_in.get("/admin/").status_code == 200
    with dash_app.app_context():
        db.session.execute(
            sa.update(DashboardSession).values(
                created_at=datetime.now(UTC) - timedelta(seconds=dashboard.LOGIN_SECONDS + 1)
            )
        )
        db.session.commit()
    assert signed_in.get("/admin/").status_code == 302


def test_changing_the_admin_token_signs_everyone_out(
    signed_in: FlaskClient, dash_app: Flask
) -> None:
    assert signed_in.get("/admin/").status_code == 200
    dash_app.config["ADMIN_TOKEN"] = "a-new-admin-token"
    assert signed_in.get("/admin/").status_code == 302


def test_without_an_admin_token_the_dashboard_says_it_is_disabled(
    make_app: Callable[..., Flask], app: Flask
) -> None:
    disabled = make_app(ADMIN_TOKEN=None)
    for url in ["/admin/", "/admin/login"]:
        response = disabled.test_client().get(url)
        assert response.status_code == 403
        assert "dashboard is disabled" in response.get_data(as_text=True)


def test_list_searches_serial_numbers_and_templates(signed_in: FlaskClient, admin: Admin) -> None:
    admin.create_pass(serialNumber="alpha-100")
    admin.create_pass(serialNumber="beta-200")
    everything = signed_in.get("/admin/").get_data(as_text=True)
    assert "alpha-100" in everything and "beta-200" in everything
    found = signed_in.get("/admin/?q=ALPHA").get_data(as_text=True)
    assert "alpha-100" in found and "beta-200" not in found
    by_template = signed_in.get("/admin/?q=storec").get_data(as_text=True)
    assert "alpha-100" in by_template and "beta-200" in by_template
    # LIKE wildcards are searched for literally.
    assert "alpha-100" not in signed_in.get("/admin/?q=%25").get_data(as_text=True)


def test_list_is_paginated(
    signed_in: FlaskClient, admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "PAGE_SIZE", 2)
    for n in range(3):
        admin.create_pass(serialNumber=f"page-{n}")
    first = signed_in.get("/admin/").get_data(as_text=True)
    assert "page-2" in first and "page-1" in first and "page-0" not in first  # newest first
    assert "page 1 of 2" in first
    second = signed_in.get("/admin/?page=2").get_data(as_text=True)
    assert "page-0" in second and "page-2" not in second


def test_the_devices_on_a_pass_page_come_a_page_at_a_time(
    signed_in: FlaskClient, admin: Admin, dash_app: Flask
) -> None:
    admin.create_pass(serialNumber="many-1")
    count = 2 * dashboard.DEVICE_PAGE_SIZE + 7
    with dash_app.app_context():
        pass_id = db.session.scalars(sa.select(Pass.id).filter_by(serial_number="many-1")).one()
        devices = [
            Device(device_library_identifier=f"device-{n:04d}", push_token=f"{n:064x}")
            for n in range(count)
        ]
        db.session.add_all(devices)
        db.session.flush()
        db.session.add_all(Registration(device_id=d.id, pass_id=pass_id) for d in devices)
        db.session.commit()
    seen: list[str] = []
    for page in (1, 2, 3):
        html = signed_in.get(detail_url("many-1"), query_string={"page": page}).get_data(
            as_text=True
        )
        assert f"Devices holding the pass ({count})" in html
        assert f"page {page} of 3" in html
        seen += re.findall(r"device-\d{4}", html)
        assert ("Later &rarr;" in html) == (page < 3)
        assert ("&larr; Earlier" in html) == (page > 1)
    assert len(seen) == count and set(seen) == {f"device-{n:04d}" for n in range(count)}


def test_detail_shows_preview_data_and_devices_but_no_secrets(
    signed_in: FlaskClient, admin: Admin, client: FlaskClient
) -> None:
    created = admin.create_pass(
        serialNumber="dash-3",
        **{"pass": {"storeCard": {"secondaryFields": [{"key": "m", "label": "M", "value": "Bo"}]}}},
    )
    assert register(client, created).status_code == 201
    html = signed_in.get(detail_url("dash-3")).get_data(as_text=True)
    assert 'class="pass pass-storeCard' in html  # the shared preview partial
    assert "&#34;value&#34;: &#34;Bo&#34;" in html  # the data, as JSON
    assert PUSH_TOKEN[:8] + "…" in html and PUSH_TOKEN not in html
    assert "keeps only the current version" in html
    assert "https://passes.example.test/p/" in html  # the link to hand to the customer
    assert "authenticationToken" not in html


@pytest.mark.parametrize("action", ["push", "void"])
@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_post_without_the_right_csrf_token_is_refused_and_changes_nothing(
    signed_in: FlaskClient,
    admin: Admin,
    client: FlaskClient,
    dash_app: Flask,
    action: str,
    token: str | None,
) -> None:
    created = admin.create_pass(serialNumber="dash-4")
    register(client, created)
    before = current("dash-4", dash_app)
    pushes_before = pending_pushes(dash_app)
    form = {"confirm": "yes"} | ({"csrf_token": token} if token else {})
    response = signed_in.post(f"{detail_url('dash-4')}/{action}", data=form)
    assert response.status_code == 400
    assert "out of date" in response.get_data(as_text=True)
    assert current("dash-4", dash_app) == before
    assert pending_pushes(dash_app) == pushes_before


def test_push_now_queues_a_push_for_every_registered_device(
    signed_in: FlaskClient, admin: Admin, client: FlaskClient, dash_app: Flask
) -> None:
    created = admin.create_pass(serialNumber="dash-5")
    register(client, created, device="d" * 32)
    register(client, created, device="e" * 32)
    with dash_app.app_context():
        db.session.execute(sa.delete(PendingPush))
        db.session.commit()
    tag_before, _ = current("dash-5", dash_app)
    page = signed_in.get(detail_url("dash-5")).get_data(as_text=True)
    response = signed_in.post(f"{detail_url('dash-5')}/push", data={"csrf_token": csrf_of(page)})
    assert response.status_code == 302
    assert pending_pushes(dash_app) == 2
    assert current("dash-5", dash_app)[0] > tag_before
    assert "Queued a push to 2 devices" in signed_in.get(detail_url("dash-5")).get_data(
        as_text=True
    )


def test_void_needs_confirming_then_voids_the_pass(
    signed_in: FlaskClient, admin: Admin, dash_app: Flask
) -> None:
    admin.create_pass(serialNumber="dash-6")
    page = signed_in.get(detail_url("dash-6")).get_data(as_text=True)
    csrf = csrf_of(page)
    signed_in.post(f"{detail_url('dash-6')}/void", data={"csrf_token": csrf})
    assert current("dash-6", dash_app)[1] is False
    response = signed_in.post(
        f"{detail_url('dash-6')}/void", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert response.status_code == 302
    assert admin.get(f"/api/passes/{PASS_TYPE}/dash-6").get_json()["pass"]["voided"] is True
    assert 'badge">voided' in signed_in.get(detail_url("dash-6")).get_data(as_text=True)


def test_an_unknown_pass_is_a_404_page(signed_in: FlaskClient) -> None:
    response = signed_in.get(detail_url("nope"))
    assert response.status_code == 404
    assert response.mimetype == "text/html"


def test_device_logs_and_push_outcomes_are_shown(signed_in: FlaskClient, dash_app: Flask) -> None:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with dash_app.app_context():
        db.session.add(DeviceLogEntry(message="Could not <fetch> the pass"))
        db.session.add(PushOutcomeCount(hour=hour, outcome="sent", count=41))
        db.session.add(PushOutcomeCount(hour=hour, outcome="removed", count=2))
        db.session.commit()
    logs = signed_in.get("/admin/logs").get_data(as_text=True)
    assert "Could not &lt;fetch&gt; the pass" in logs
    pushes = signed_in.get("/admin/pushes").get_data(as_text=True)
    assert hour.strftime("%Y-%m-%d %H:00") in pushes
    assert ">41<" in pushes and ">2<" in pushes
    assert "<strong>0</strong> devices waiting" in pushes


def test_pages_carry_security_headers(signed_in: FlaskClient) -> None:
    response = signed_in.get("/admin/")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
