"""Values a client can send that no page and no later change may choke on."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from flask.testing import FlaskClient

from tests.conftest import ADMIN_TOKEN, Admin
from tests.test_dashboard import PASS_TYPE, csrf_of, sign_in

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
