"""Errors as pages for browsers and as JSON for everyone else, chosen by the Accept header."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import ADMIN_TOKEN

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"
JSON_CLIENTS = [None, "*/*", "application/json", "application/json, text/html;q=0.5"]


def get(client: FlaskClient, url: str, accept: str | None, **kwargs: object) -> object:
    headers = {"Accept": accept} if accept else {}
    return client.open(url, headers=headers, **kwargs)


@pytest.mark.parametrize(
    ("url", "method", "status"),
    [
        ("/admin/no-such-page", "GET", 404),
        ("/no-such-page", "GET", 404),
        ("/healthz", "POST", 405),
        ("/api/passes", "GET", 401),
    ],
)
def test_a_browser_gets_an_error_page(
    client: FlaskClient, url: str, method: str, status: int
) -> None:
    response = get(client, url, BROWSER, method=method)
    assert response.status_code == status
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "<h1>" in html and f"Error {status}." in html
    assert 'href="/admin/"' in html  # somewhere to go from here
    assert "Accept" in response.headers["Vary"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    if status == 405:
        assert response.headers["Allow"]


@pytest.mark.parametrize("accept", JSON_CLIENTS)
def test_api_clients_and_curl_keep_json_errors(client: FlaskClient, accept: str | None) -> None:
    response = get(client, "/admin/no-such-page", accept)
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"
    unauthorized = get(client, "/api/passes", accept)
    assert unauthorized.status_code == 401
    assert unauthorized.get_json()["error"] == "unauthorized"


def test_devices_get_json_whatever_they_accept(client: FlaskClient) -> None:
    for url in ["/wallet/v1/devices/x/registrations/pass.a/1", "/wallet/v1/nothing-here"]:
        response = get(client, url, BROWSER)
        assert response.mimetype == "application/json", url
        assert response.status_code in (401, 404, 405)


def test_a_pass_refused_by_validation_is_a_page_with_every_problem(client: FlaskClient) -> None:
    body = {"template": "storecard", "pass": {"backgroundColor": "red", "sharingProhibited": 1}}
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Accept": BROWSER}
    response = client.post("/api/passes", json=body, headers=headers)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "$.backgroundColor" in html and "$.sharingProhibited" in html


def test_an_unexpected_error_is_a_page_that_reveals_nothing(
    make_app: Callable[..., Flask], app: Flask
) -> None:
    broken = make_app()

    @broken.get("/broken")
    def fail() -> None:
        raise RuntimeError("secret detail")

    for accept, mimetype in [(BROWSER, "text/html"), ("*/*", "application/json")]:
        response = get(broken.test_client(), "/broken", accept)
        assert response.status_code == 500
        assert response.mimetype == mimetype
        assert "secret detail" not in response.get_data(as_text=True)


def test_the_front_page_says_what_this_is_in_a_browser(client: FlaskClient) -> None:
    response = get(client, "/", BROWSER)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Apple Wallet passes" in html
    assert 'href="/admin/"' in html and 'href="/openapi.json"' in html
    for accept in JSON_CLIENTS:
        assert get(client, "/", accept).get_json()["error"] == "not_found"


def test_a_throttled_browser_gets_a_page_and_an_api_client_json(
    make_app: Callable[..., Flask], app: Flask
) -> None:
    throttled = make_app().test_client()
    wrong = {"Authorization": "Bearer not-the-admin-token-at-all-no"}
    # Ten wrong tokens a minute, then 429 (passes/throttling.py).
    statuses = [throttled.get("/api/passes", headers=wrong).status_code for _ in range(11)]
    assert statuses[-1] == 429
    page = throttled.get("/api/passes", headers={**wrong, "Accept": BROWSER})
    assert page.status_code == 429 and page.mimetype == "text/html"
    assert "Too Many Requests" in page.get_data(as_text=True)
    assert throttled.get("/api/passes", headers=wrong).get_json()["error"] == "too_many_requests"
