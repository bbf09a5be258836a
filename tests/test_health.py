"""/healthz and the request log."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import ADMIN_TOKEN, Admin
from tests.test_webservice import PUSH_TOKEN, auth, registration_url


def test_healthy_service_reports_its_parts(client: FlaskClient, admin: Admin) -> None:
    created = admin.create_pass()
    client.post(registration_url(created), headers=auth(created), json={"pushToken": PUSH_TOKEN})
    admin.patch(
        f"/api/passes/{created['passTypeIdentifier']}/{created['serialNumber']}",
        json={"pass": {"logoText": "x"}},
    )
    response = client.get("/healthz")
    assert response.status_code == 200
    checks = response.get_json()["checks"]
    assert checks["database"] == "ok"
    assert checks["migrations"] == "at head"
    assert checks["pushBacklog"] == 1
    assert checks["certificate"]["daysToExpiry"] > 300


def test_without_certificate_it_is_unhealthy(make_app: Callable[..., Flask]) -> None:
    app = make_app(PASS_CERTIFICATE=None, WWDR_CERTIFICATE=None)
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert "PASS_CERTIFICATE" in response.get_json()["checks"]["certificate"]


def test_unreachable_database_is_503(make_app: Callable[..., Flask]) -> None:
    app = make_app(SQLALCHEMY_DATABASE_URI="postgresql+psycopg2://nobody@127.0.0.1:1/none")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"] == "unreachable"


def test_request_log_has_one_line_per_request_and_no_secrets(
    client: FlaskClient, admin: Admin, caplog: pytest.LogCaptureFixture
) -> None:
    created = admin.create_pass()
    caplog.clear()
    token = auth(created)["Authorization"].split()[1]
    response = client.post(
        registration_url(created),
        headers={**auth(created), "X-Request-Id": "req-42"},
        json={"pushToken": PUSH_TOKEN},
    )
    assert response.headers["X-Request-Id"] == "req-42"
    lines = [r.getMessage() for r in caplog.records if r.name == "passes.requests"]
    assert lines == [lines[0]]
    assert (
        "id=req-42" in lines[0]
        and "status=201" in lines[0]
        and "endpoint=webservice.register" in lines[0]
    )
    assert token not in caplog.text
    assert PUSH_TOKEN not in caplog.text
    assert ADMIN_TOKEN not in caplog.text


def test_request_log_line_escapes_what_the_client_sent(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = client.open("/healthz", method="GET\r\nforged line\x1b[31m")
    assert response.status_code == 405
    lines = [r.getMessage() for r in caplog.records if r.name == "passes.requests"]
    assert len(lines) == 1
    assert "method=GET\\r\\nforged line\\x1b[31m endpoint=" in lines[0]
