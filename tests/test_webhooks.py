"""Webhooks: events written with the change, signed as Standard Webhooks says, delivered at
least once by a real worker to a real HTTP receiver, verified with the specification's own
Python library."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import signal
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from standardwebhooks import Webhook

from models import WebhookMessage, db, utcnow
from passes import pushing, webhooks
from tests.apns_server import FakeApns, Reply
from tests.conftest import ADMIN_TOKEN, Admin
from tests.pushes import patch, seed_devices, token
from tests.test_dashboard import sign_in
from tests.test_personalization import INFO, enrollable, personalize_url
from tests.test_webservice import DEVICE, auth, registration_url
from tests.test_worker import start_worker, wait_until  # noqa: F401 (a fixture)
from tests.webhook_receiver import HOLD, Received, WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"a 32-byte key for webhook tests!").decode()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def hook_app(make_app: Callable[..., Flask], receiver: WebhookReceiver) -> Flask:
    """Delivers from the web process after each commit, as on SQLite by default."""
    return make_app(
        PUSH_MODE="inline", WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=SECRET, PUSH_RATE=0
    )


def verified(request: Received, secret: str | bytes = SECRET) -> dict[str, Any]:
    """The event, if its signature checks out with Standard Webhooks' verifier."""
    return Webhook(secret).verify(request.body, request.headers)


def messages(app: Flask) -> list[WebhookMessage]:
    with app.app_context():
        rows = db.session.scalars(sa.select(WebhookMessage).order_by(WebhookMessage.id)).all()
        db.session.expunge_all()
        db.session.remove()
    return list(rows)


def deliver(app: Flask) -> webhooks.DeliverySummary:
    return webhooks.deliver_now(app)


def test_registration_sends_a_signed_pass_registered_event(
    hook_app: Flask, receiver: WebhookReceiver
) -> None:
    client = hook_app.test_client()
    created = Admin(client).create_pass(serialNumber="hooked")
    response = client.post(
        registration_url(created), headers=auth(created), json={"pushToken": "ab" * 32}
    )
    assert response.status_code == 201
    [request] = receiver.wait_for(1)
    event = verified(request)
    assert event["type"] == "pass.registered"
    assert event["data"] == {
        "passTypeIdentifier": created["passTypeIdentifier"],
        "serialNumber": "hooked",
        "deviceLibraryIdentifier": DEVICE,
    }
    assert event["timestamp"].endswith("Z")
    assert request.headers["webhook-id"].startswith("msg_")
    assert request.headers["content-type"] == "application/json"
    wait_until(lambda: messages(hook_app)[0].delivered_at is not None, "the delivery recorded")
    [row] = messages(hook_app)
    assert (row.attempts, row.last_status, row.due_at) == (1, 200, None)


def test_registering_again_and_unregistering_send_one_event_each(
    hook_app: Flask, receiver: WebhookReceiver
) -> None:
    client = hook_app.test_client()
    created = Admin(client).create_pass(serialNumber="hooked")
    for _ in range(2):
        client.post(registration_url(created), headers=auth(created), json={"pushToken": "ab" * 32})
    assert client.delete(registration_url(created), headers=auth(created)).status_code == 200
    assert client.delete(registration_url(created), headers=auth(created)).status_code == 200
    received = receiver.wait_for(2)
    # Both may go out in one batch, in either order (events carry their time for that).
    assert sorted(verified(r)["type"] for r in received) == ["pass.registered", "pass.unregistered"]
    wait_until(lambda: all(m.delivered_at for m in messages(hook_app)), "both delivered")
    assert len(messages(hook_app)) == 2


def test_personalization_sends_pass_personalized(
    hook_app: Flask, receiver: WebhookReceiver
) -> None:
    client = hook_app.test_client()
    created = enrollable(Admin(client))
    body = {"personalizationToken": "token-from-wallet", "requiredPersonalizationInfo": INFO}
    assert client.post(personalize_url(created), json=body).status_code == 200
    event = verified(receiver.wait_for(1)[0])
    assert event["type"] == "pass.personalized"
    # Only identifiers: the customer's details stay behind the admin API.
    assert event["data"] == {
        "passTypeIdentifier": created["passTypeIdentifier"],
        "serialNumber": created["serialNumber"],
    }
    wait_until(lambda: messages(hook_app)[0].delivered_at is not None, "the delivery recorded")


def test_a_refused_change_queues_no_event(hook_app: Flask, receiver: WebhookReceiver) -> None:
    client = hook_app.test_client()
    created = Admin(client).create_pass(serialNumber="hooked")
    response = client.post(registration_url(created), headers=auth(created), json={"pushToken": 1})
    assert response.status_code == 400
    assert messages(hook_app) == []
    assert receiver.received == []


def test_without_an_endpoint_nothing_is_queued(
    client: FlaskClient, admin: Admin, app: Flask
) -> None:
    created = admin.create_pass(serialNumber="quiet")
    client.post(registration_url(created), headers=auth(created), json={"pushToken": "ab" * 32})
    assert messages(app) == []


def test_a_plain_text_secret_signs_with_its_own_bytes(
    make_app: Callable[..., Flask], receiver: WebhookReceiver
) -> None:
    secret = "a plain secret of some length"
    app = make_app(PUSH_MODE="off", WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=secret)
    client = app.test_client()
    created = Admin(client).create_pass(serialNumber="plain")
    client.post(registration_url(created), headers=auth(created), json={"pushToken": "ab" * 32})
    assert deliver(app).delivered == 1
    assert verified(receiver.received[0], secret.encode())["type"] == "pass.registered"
    with pytest.raises(Exception, match="No matching signature"):
        verified(receiver.received[0], SECRET)


def queue_one(app: Flask) -> None:
    client = app.test_client()
    created = Admin(client).create_pass(serialNumber="retried")
    client.post(registration_url(created), headers=auth(created), json={"pushToken": "ab" * 32})


def test_an_answer_other_than_2xx_is_retried_later_with_the_same_id(
    make_app: Callable[..., Flask], receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(PUSH_MODE="off", WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=SECRET)
    queue_one(app)
    receiver.script(500, 302)
    before = utcnow()
    assert deliver(app).failed == 1
    [row] = messages(app)
    assert (row.attempts, row.last_status, row.delivered_at) == (1, 500, None)
    assert row.last_error == "answered HTTP 500"
    # The first retry about RETRY_BASE later (with jitter down to three quarters of it).
    assert before + webhooks.RETRY_BASE * 0.75 <= row.due_at <= utcnow() + webhooks.RETRY_BASE
    assert deliver(app).total == 0  # not due yet

    def make_due() -> None:
        with app.app_context():
            db.session.execute(sa.update(WebhookMessage).values(due_at=utcnow()))
            db.session.commit()

    make_due()
    assert deliver(app).failed == 1  # a redirect is not followed: not delivered either
    [row] = messages(app)
    assert row.attempts == 2 and row.due_at > utcnow() + webhooks.RETRY_BASE
    make_due()
    assert deliver(app).delivered == 1
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert len(receiver.received) == 3 and len(ids) == 1
    [row] = messages(app)
    assert (row.attempts, row.last_status, row.last_error, row.due_at) == (3, 200, None, None)
    # The log names the endpoint's host, never its path or query (they may hold a key).
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "http://127.0.0.1: answered HTTP 500" in logged
    assert "key=abc" not in logged and "/hooks/" not in logged


def test_an_endpoint_that_does_not_answer_in_time_is_retried_later(
    make_app: Callable[..., Flask], receiver: WebhookReceiver
) -> None:
    app = make_app(
        PUSH_MODE="off",
        WEBHOOK_URL=receiver.url,
        WEBHOOK_SECRET=SECRET,
        WEBHOOK_TIMEOUT_SECONDS=0.3,
    )
    queue_one(app)
    receiver.script(HOLD)
    assert deliver(app).failed == 1
    [row] = messages(app)
    assert row.last_status is None and row.last_error == "no answer within 0.3 s"


def test_retry_waits_double_up_to_an_hour() -> None:
    now = utcnow()
    waits = [webhooks._retry_at(n, now) - now for n in range(1, 20)]
    for attempts, wait in enumerate(waits, start=1):
        ceiling = min(webhooks.RETRY_CAP, webhooks.RETRY_BASE * 2 ** (attempts - 1))
        assert ceiling * 0.75 <= wait <= ceiling
    assert waits[-1] >= webhooks.RETRY_CAP * 0.75


def test_a_dead_token_and_a_refused_push_become_events(
    make_app: Callable[..., Flask], apns: FakeApns, receiver: WebhookReceiver
) -> None:
    app = make_app(
        APNS_URL=apns.url,
        APNS_CA_FILE=apns.ca_file,
        WEBHOOK_URL=receiver.url,
        WEBHOOK_SECRET=SECRET,
    )
    seed_devices(app, 3)
    apns.script(token(0), Reply(410, "Unregistered"))
    apns.script(token(1), Reply(400, "TopicDisallowed"))
    patch(app)
    with app.app_context():
        summary = pushing.drain_now()
    assert (summary.sent, summary.removed, summary.failed) == (1, 1, 1)
    assert deliver(app).delivered == 2
    events = sorted((verified(r) for r in receiver.received), key=lambda e: e["type"])
    assert [(e["type"], e["data"]) for e in events] == [
        ("device.removed", {"deviceLibraryIdentifier": "device-0", "reason": "Unregistered"}),
        ("push.failed", {"deviceLibraryIdentifier": "device-1", "reason": "TopicDisallowed"}),
    ]


def test_a_worker_killed_mid_delivery_leaves_the_message_to_the_next(
    make_app: Callable[..., Flask],
    receiver: WebhookReceiver,
    start_worker: Callable[..., Any],  # noqa: F811
) -> None:
    settings = {"WEBHOOK_URL": receiver.url, "WEBHOOK_SECRET": SECRET}
    timeout = 0.5  # seconds; the lease is a few of these
    queue_one(make_app(PUSH_MODE="off", **settings))
    receiver.script(HOLD)
    first = start_worker(WEBHOOK_TIMEOUT_SECONDS=30, **settings)
    receiver.wait_for(1, timeout=30)
    first.process.kill()  # SIGKILL while the request is in flight: nothing recorded
    first.process.wait(10)
    [row] = messages(make_app(PUSH_MODE="off"))
    assert row.delivered_at is None and row.claimed_until is not None
    # The next worker takes it once the lease is over (made short here by the timeout).
    with make_app(PUSH_MODE="off").app_context():
        db.session.execute(
            sa.update(WebhookMessage).values(claimed_until=utcnow() + timedelta(seconds=1))
        )
        db.session.commit()
        db.session.remove()
    second = start_worker(WEBHOOK_TIMEOUT_SECONDS=timeout, **settings)
    second_request = receiver.wait_for(2, timeout=30)[1]
    assert second_request.headers["webhook-id"] == receiver.received[0].headers["webhook-id"]
    assert verified(second_request)["type"] == "pass.registered"
    wait_until(lambda: messages(make_app(PUSH_MODE="off"))[0].delivered_at, "delivery recorded")
    assert second.stop(signal.SIGTERM) == 0


def test_a_hanging_endpoint_holds_up_no_push(
    make_app: Callable[..., Flask],
    apns: FakeApns,
    receiver: WebhookReceiver,
    start_worker: Callable[..., Any],  # noqa: F811
) -> None:
    settings = {"WEBHOOK_URL": receiver.url, "WEBHOOK_SECRET": SECRET}
    app = make_app(PUSH_MODE="off", **settings)
    queue_one(app)
    receiver.script(HOLD)
    worker = start_worker(WEBHOOK_TIMEOUT_SECONDS=60, **settings)
    receiver.wait_for(1, timeout=30)  # the worker is stuck on the endpoint ...
    seed_devices(app, 2)
    patch(app)
    assert len(apns.wait_for(2, timeout=15)) == 2  # ... and pushes all the same
    # SIGTERM: the delivery in flight is handed back, and the worker still stops at once.
    assert worker.stop(signal.SIGTERM, timeout=15) == 0
    [row] = messages(app)
    assert row.delivered_at is None and row.claimed_until is None


@pytest.mark.parametrize(
    ("url", "secret", "says"),
    [
        ("ftp://example.com/hook", SECRET, "WEBHOOK_URL must be an http or https URL"),
        ("https://example.com/hook", None, "WEBHOOK_SECRET"),
        ("https://example.com/hook", "short", "at least 16 bytes"),
        ("https://example.com/hook", "whsec_not base64!!", "must be base64"),
    ],
)
def test_a_bad_webhook_setting_stops_the_start_with_its_name(
    make_app: Callable[..., Flask],
    capsys: pytest.CaptureFixture[str],
    url: str,
    secret: str | None,
    says: str,
) -> None:
    with pytest.raises(SystemExit):
        make_app(WEBHOOK_URL=url, WEBHOOK_SECRET=secret)
    error = capsys.readouterr().err
    assert says in error
    if secret:
        assert secret not in error


def test_signature_matches_the_reference_library() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = '{"test": 2432232314}'
    ours = webhooks.signature(
        webhooks.secret_key(secret), "msg_p5jXN8AQM2LWM0D4loKWxJek", 1614265330, body
    )
    moment = datetime.fromtimestamp(1614265330, UTC)
    assert ours == Webhook(secret).sign("msg_p5jXN8AQM2LWM0D4loKWxJek", moment, body)


def test_an_idle_deliverer_sends_nothing(app: Flask) -> None:
    async def once() -> webhooks.DeliverySummary:
        async with httpx.AsyncClient() as client:
            return await webhooks.Deliverer(client, db.engine, app.config).deliver_due()

    with app.app_context():
        assert asyncio.run(once()).total == 0


def test_event_bodies_are_compact_json(hook_app: Flask, receiver: WebhookReceiver) -> None:
    client = hook_app.test_client()
    created = Admin(client).create_pass(serialNumber="hooked")
    client.post(registration_url(created), headers=auth(created), json={"pushToken": "ab" * 32})
    body = receiver.wait_for(1)[0].body
    assert json.loads(body)["type"] == "pass.registered"
    assert b" " not in body
    wait_until(lambda: messages(hook_app)[0].delivered_at is not None, "the delivery recorded")


def test_the_readmes_example_request_verifies() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    secret = re.search(r"WEBHOOK_SECRET=(whsec_\S+?)`", readme).group(1)
    example = re.search(r"```http\n(.*?)\n\n(.*?)\n```", readme, re.DOTALL)
    headers = dict(line.split(": ", 1) for line in example.group(1).splitlines()[1:])
    body = example.group(2)
    timestamp = int(headers["webhook-timestamp"])
    assert headers["webhook-signature"] == webhooks.signature(
        webhooks.secret_key(secret), headers["webhook-id"], timestamp, body
    )
    moment = datetime.fromtimestamp(timestamp, UTC)
    assert headers["webhook-signature"] == Webhook(secret).sign(headers["webhook-id"], moment, body)
    assert json.loads(body)["timestamp"] == moment.isoformat().replace("+00:00", ".000Z")


def failing_and_delivered(app: Flask) -> None:
    """One message delivered and one failing, for the pages."""
    now = utcnow()
    with app.app_context():
        for number, delivered in ((1, True), (2, False)):
            db.session.add(
                WebhookMessage(
                    message_id=f"msg_{number}",
                    event_type="pass.registered" if delivered else "device.removed",
                    body="{}",
                    created_at=now,
                    due_at=None if delivered else now + timedelta(minutes=5),
                    attempts=1 if delivered else 3,
                    delivered_at=now if delivered else None,
                    last_status=200 if delivered else 503,
                    last_error=None if delivered else "answered HTTP 503",
                )
            )
        db.session.commit()


def test_the_dashboard_shows_endpoints_and_failing_deliveries(
    make_app: Callable[..., Flask], receiver: WebhookReceiver
) -> None:
    app = make_app(WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=SECRET)
    failing_and_delivered(app)
    browser = app.test_client()
    sign_in(browser, ADMIN_TOKEN)
    page = browser.get("/admin/webhooks")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<strong>1</strong> message\n  waiting" in html and "1 failing" in html
    assert "answered HTTP 503" in html and "delivered" in html
    # The endpoint's path, never its query (it may hold the receiver's key) or the secret.
    assert "/hooks/pass-server?…" in html
    assert "key=abc" not in html and SECRET not in html


def test_endpoints_added_through_the_api_get_the_events_they_ask_for(
    make_app: Callable[..., Flask], receiver: WebhookReceiver
) -> None:
    app = make_app(PUSH_MODE="off")
    client = app.test_client()
    admin = Admin(client)
    added = admin.post("/api/webhooks", json={"url": receiver.url, "events": ["pass.unregistered"]})
    assert added.status_code == 201, added.get_json()
    endpoint = added.get_json()
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["url"].endswith("/hooks/pass-server?…")  # the query may hold a key
    assert endpoint["events"] == ["pass.unregistered"]
    listed = admin.get("/api/webhooks").get_json()
    assert [e["id"] for e in listed["endpoints"]] == [endpoint["id"]]
    assert "secret" not in listed["endpoints"][0]

    created = admin.create_pass(serialNumber="filtered")
    client.post(registration_url(created), headers=auth(created), json={"pushToken": "ab" * 32})
    client.delete(registration_url(created), headers=auth(created))
    assert deliver(app).delivered == 1
    [request] = receiver.received
    assert verified(request, endpoint["secret"])["type"] == "pass.unregistered"

    messages_page = admin.get("/api/webhooks/messages").get_json()["messages"]
    assert [(m["type"], m["state"], m["endpoint"]) for m in messages_page] == [
        ("pass.unregistered", "delivered", endpoint["id"])
    ]
    assert admin.get("/api/webhooks").get_json()["backlog"] == {
        "undelivered": 0,
        "failing": 0,
        "oldestUndeliveredAt": None,
    }


def test_removing_an_endpoint_drops_its_undelivered_messages(
    make_app: Callable[..., Flask], receiver: WebhookReceiver
) -> None:
    app = make_app(PUSH_MODE="off", WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=SECRET)
    client = app.test_client()
    admin = Admin(client)
    endpoint = admin.post("/api/webhooks", json={"url": receiver.url}).get_json()
    queue_one(app)  # one message for WEBHOOK_URL, one for the endpoint
    assert len(messages(app)) == 2
    ids = [e["id"] for e in admin.get("/api/webhooks").get_json()["endpoints"]]
    assert ids == ["env", endpoint["id"]]
    response = client.delete(f"/api/webhooks/{endpoint['id']}", headers=admin.headers)
    assert response.status_code == 200
    assert [m.endpoint_id for m in messages(app)] == [None]
    again = client.delete(f"/api/webhooks/{endpoint['id']}", headers=admin.headers)
    assert again.status_code == 404 and again.get_json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"url": "ftp://example.com/hook"}, "$.url"),
        ({"url": "https://"}, "$.url"),
        ({"url": "https://example.com/" + "x" * 2048}, "$.url"),
        ({"url": "https://example.com/hook", "events": ["pass.eaten"]}, "$.events[0]"),
        ({"url": "https://example.com/hook", "events": []}, "$.events"),
        (
            {"url": "https://example.com/hook", "events": ["pass.registered"] * 2},
            "$.events",
        ),
        ({"url": "https://example.com/hook", "secret": "short"}, "$.secret"),
        ({"url": "https://example.com/hook", "secret": "whsec_not base64!"}, "$.secret"),
        ({"url": "https://example.com/hook", "colour": "red"}, "$"),
        ({}, "$.url"),
    ],
)
def test_a_bad_endpoint_is_400_at_its_path_and_stores_nothing(
    admin: Admin, app: Flask, body: dict[str, Any], path: str
) -> None:
    response = admin.post("/api/webhooks", json=body)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["path"] == path
    assert admin.get("/api/webhooks").get_json()["endpoints"] == []


def test_a_given_secret_is_kept_and_never_listed(admin: Admin) -> None:
    secret = "a plain secret of some length"
    added = admin.post("/api/webhooks", json={"url": "https://example.com/h", "secret": secret})
    assert added.get_json()["secret"] == secret
    assert secret not in admin.get("/api/webhooks").get_data(as_text=True)


def test_endpoints_are_capped(admin: Admin) -> None:
    for number in range(webhooks.MAX_ENDPOINTS):
        url = f"https://example.com/{number}"
        assert admin.post("/api/webhooks", json={"url": url}).status_code == 201
    refused = admin.post("/api/webhooks", json={"url": "https://example.com/one-more"})
    assert refused.status_code == 409
    assert str(webhooks.MAX_ENDPOINTS) in refused.get_json()["message"]
