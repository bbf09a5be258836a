"""/healthz."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Admin
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
    assert checks["certificates"][0]["daysToExpiry"] > 300


def test_without_certificate_it_is_unhealthy(make_app: Callable[..., Flask]) -> None:
    app = make_app(PASS_CERTIFICATE=None, WWDR_CERTIFICATE=None)
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert "PASS_CERTIFICATE" in response.get_json()["checks"]["certificates"]


def test_unreachable_database_is_503(make_app: Callable[..., Flask]) -> None:
    app = make_app(SQLALCHEMY_DATABASE_URI="postgresql+psycopg2://nobody@127.0.0.1:1/none")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"] == "unreachable"
