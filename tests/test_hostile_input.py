"""Values a client can send that no page and no later change may choke on."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from models import Pass, db
from passes import links
from passes.validation import MAX_JSON_DEPTH
from tests.conftest import ADMIN_TOKEN, Admin
from tests.test_dashboard import PASS_TYPE, csrf_of, sign_in
from tests.test_sign import package, zipped

NUL = "\x00"

# Every kind of route, each with a NUL in a path part: the admin API, the dashboard, the
# public page and the device web service.
NUL_IN_PATH = [
    ("GET", f"/api/passes/{PASS_TYPE}/a{NUL}b"),
    ("PATCH", f"/api/passes/{PASS_TYPE}/a{NUL}b"),
    ("POST", f"/api/passes/{PASS_TYPE}/a{NUL}b/void"),
    ("POST", f"/api/passes/{PASS_TYPE}/a{NUL}b/expire"),
    ("GET", f"/api/passes/{PASS_TYPE}/a{NUL}b/pkpass"),
    ("GET", f"/api/passes/{PASS_TYPE}/a{NUL}b/registrations"),
    ("GET", f"/api/passes/{PASS_TYPE}/a{NUL}b/personalization"),
    ("GET", f"/api/passes/pass.{NUL}/nul-1"),
    ("GET", f"/admin/passes/{PASS_TYPE}/a{NUL}b"),
    ("POST", f"/admin/passes/{PASS_TYPE}/a{NUL}b/push"),
    ("POST", f"/admin/passes/{PASS_TYPE}/a{NUL}b/void"),
    ("GET", f"/p/a{NUL}b"),
    ("GET", f"/wallet/v1/passes/{PASS_TYPE}/a{NUL}b"),
    ("POST", f"/wallet/v1/devices/d{NUL}/registrations/{PASS_TYPE}/nul-1"),
]
NUL_IN_QUERY = [
    ("GET", "/admin/?q=a%00b"),
    ("GET", "/admin/?page=%00"),
    ("GET", "/api/passes?after=%00"),
    ("GET", "/api/logs?limit=1%00"),
    ("GET", f"/wallet/v1/devices/d/registrations/{PASS_TYPE}?passesUpdatedSince=%00"),
    ("GET", f"/api/passes/{PASS_TYPE}/nul-1?x=%00"),
]


@pytest.fixture
def signed_in_admin(client: FlaskClient, admin: Admin) -> tuple[FlaskClient, str]:
    """A client signed in to the dashboard (its CSRF token too) that also sends the bearer
    token, so that every route reaches the code behind its guard."""
    admin.create_pass(serialNumber="nul-1")
    assert sign_in(client, ADMIN_TOKEN).status_code == 302
    return client, csrf_of(client.get("/admin/").get_data(as_text=True))


@pytest.mark.parametrize(("method", "url"), NUL_IN_PATH + NUL_IN_QUERY)
def test_a_nul_in_the_path_or_query_is_a_4xx_on_every_route(
    signed_in_admin: tuple[FlaskClient, str], method: str, url: str
) -> None:
    client, csrf = signed_in_admin
    # The path goes on the wire percent-encoded, as a browser or curl would send it.
    path, _, query = url.partition("?")
    response = client.open(
        quote(path) + (f"?{query}" if query else ""),
        method=method,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        data={"csrf_token": csrf, "confirm": "yes"} if url.startswith("/admin") else None,
        json={"pass": {"logoText": "x"}} if method == "PATCH" else None,
    )
    assert 400 <= response.status_code < 500, (method, url, response.status_code)
    assert response.get_json()["error"] in {"bad_request", "not_found"}


# --- Numbers and nesting --------------------------------------------------------------------

HUGE = int("9" * 401)  # parses in Python, beyond any double: Wallet cannot read it


def huge_field(**formatting: str) -> dict[str, Any]:
    field = {"key": "balance", "label": "BALANCE", "value": HUGE, **formatting}
    return {"storeCard": {"secondaryFields": [field]}}


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def pass_with_user_info(levels: int) -> str:
    """A partial pass.json whose userInfo makes it nest `levels` deep in all, as JSON text:
    too deep for the json module to write."""
    return '{"userInfo": ' + '{"a": ' * (levels - 2) + "{}" + "}" * (levels - 2) + "}"


def body_with_user_info(levels: int) -> bytes:
    """{"pass": {"userInfo": ...}}, `levels` deep in all."""
    return f'{{"template": "storecard", "pass": {pass_with_user_info(levels - 1)}}}'.encode()


def stored_passes(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Pass)) or 0


@pytest.mark.parametrize(
    "formatting",
    [{"currencyCode": "USD"}, {"numberStyle": "PKNumberStyleScientific"}, {}],
    ids=["currency", "scientific", "plain"],
)
def test_a_number_wallet_cannot_hold_is_refused_at_its_path(
    app: Flask, admin: Admin, formatting: dict[str, str]
) -> None:
    created = admin.create_pass(serialNumber="num-1")
    url = f"/api/passes/{PASS_TYPE}/num-1"
    path = "$.pass.storeCard.secondaryFields[0].value"
    for response in (
        admin.post("/api/passes", json={"template": "storecard", "pass": huge_field(**formatting)}),
        admin.patch(url, json={"pass": huge_field(**formatting)}),
    ):
        assert response.status_code == 400, response.get_json()
        assert response.get_json()["path"] == path
        assert "larger than Wallet" in response.get_json()["message"]
    assert stored_passes(app) == 1
    assert admin.get(url).get_json()["updateTag"] == created["updateTag"]


def test_nesting_deeper_than_the_limit_is_refused_at_its_path(app: Flask, admin: Admin) -> None:
    admin.create_pass(serialNumber="deep-1")
    url = f"/api/passes/{PASS_TYPE}/deep-1"
    for levels in (MAX_JSON_DEPTH + 1, 950):
        body = body_with_user_info(levels)
        for response in (
            admin.post("/api/passes", data=body, content_type="application/json"),
            admin.patch(url, data=body, content_type="application/json"),
        ):
            assert response.status_code == 400, response.get_json()
            path = response.get_json()["path"]
            assert path == "$.pass.userInfo" + ".a" * (MAX_JSON_DEPTH - 2)
    assert stored_passes(app) == 1


def test_the_deepest_nesting_allowed_still_patches_and_voids(admin: Admin) -> None:
    response = admin.post(
        "/api/passes", data=body_with_user_info(MAX_JSON_DEPTH), content_type="application/json"
    )
    assert response.status_code == 201, response.get_json()
    url = f"/api/passes/{PASS_TYPE}/{response.get_json()['serialNumber']}"
    assert admin.patch(url, json={"pass": {"logoText": "Deep"}}).status_code == 200
    assert admin.post(url + "/void").status_code == 200


def test_the_command_line_refuses_them_too(app: Flask, runner: FlaskCliRunner) -> None:
    for data in (json.dumps(huge_field(currencyCode="USD")), pass_with_user_info(950)):
        result = runner.invoke(args=["passes", "create", "--template", "storecard", "--data", data])
        # 1: refused at its path; 2: too deep for the json module to read at all.
        assert result.exit_code in (1, 2), result.output
        assert "levels deep" in result.output or "larger than Wallet" in result.output
    assert stored_passes(app) == 0


def test_a_signed_package_holding_one_is_422_and_not_stored(app: Flask, admin: Admin) -> None:
    files = package(**huge_field(currencyCode="USD"))
    response = admin.post(
        "/api/sign",
        data=zipped(files),
        content_type="application/zip",
        query_string={"store": "true"},
    )
    assert response.status_code == 422
    paths = [problem["path"] for problem in response.get_json()["errors"]]
    assert paths == ["$.storeCard.secondaryFields[0].value"]
    assert stored_passes(app) == 0


def test_pages_show_such_a_number_stored_before_it_was_refused(
    app: Flask, admin: Admin, signed_in_admin: tuple[FlaskClient, str]
) -> None:
    client, _ = signed_in_admin
    for serial, formatting in (
        ("old-1", {"currencyCode": "USD"}),
        ("old-2", {"numberStyle": "PKNumberStyleScientific"}),
    ):
        admin.create_pass(serialNumber=serial)
        with app.app_context():
            pass_ = db.session.scalars(sa.select(Pass).filter_by(serial_number=serial)).one()
            pass_.data = huge_field(**formatting)
            db.session.commit()
            public = "/p/" + links.download_token(pass_)
        shown = "$" + f"{HUGE:,}" + ".00" if formatting.get("currencyCode") else "1E401"
        for url in (public, f"/admin/passes/{PASS_TYPE}/{serial}"):
            response = client.get(url)
            assert response.status_code == 200, url
            assert shown in response.get_data(as_text=True), url
