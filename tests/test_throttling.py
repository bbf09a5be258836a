"""Wrong admin tokens are slowed down per client address, through the real app."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from passes.throttling import MESSAGE
from tests.conftest import ADMIN_TOKEN
from tests.test_dashboard import csrf_of

GUESSES = 10  # passes.throttling.WRONG_TOKENS: 10 per minute
WRONG = {"Authorization": "Bearer not-the-admin-token"}
RIGHT = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def throttled_app(make_app: Callable[..., Flask], app: Flask) -> Iterator[Flask]:
    """An app of its own, so its counts start at zero."""
    yield make_app()


def client_at(app: Flask, address: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def sign_in(client: FlaskClient, token: str) -> object:
    csrf = csrf_of(client.get("/admin/login").get_data(as_text=True))
    return client.post("/admin/login", data={"token": token, "csrf_token": csrf})


def test_wrong_admin_tokens_are_refused_with_429_after_ten_a_minute(throttled_app: Flask) -> None:
    guesser = client_at(throttled_app, "192.0.2.1")
    statuses = [guesser.get("/api/passes", headers=WRONG).status_code for _ in range(GUESSES)]
    assert statuses == [401] * GUESSES
    refused = guesser.get("/api/passes", headers=WRONG)
    assert refused.status_code == 429
    assert refused.get_json() == {"error": "too_many_requests", "message": MESSAGE}
    # From that address even the right token waits: a different answer would tell it apart.
    assert guesser.get("/api/passes", headers=RIGHT).status_code == 429
    # Other addresses are not slowed down.
    assert (
        client_at(throttled_app, "192.0.2.2").get("/api/passes", headers=RIGHT).status_code == 200
    )


def test_right_tokens_never_count(throttled_app: Flask) -> None:
    admin = client_at(throttled_app, "192.0.2.3")
    for _ in range(3 * GUESSES):
        assert admin.get("/api/passes", headers=RIGHT).status_code == 200
    statuses = [admin.get("/api/passes", headers=WRONG).status_code for _ in range(GUESSES)]
    assert statuses == [401] * GUESSES


def test_wrong_dashboard_sign_ins_count_with_wrong_api_tokens(throttled_app: Flask) -> None:
    guesser = client_at(throttled_app, "192.0.2.4")
    for _ in range(GUESSES // 2):
        assert guesser.get("/api/logs", headers=WRONG).status_code == 401
    for _ in range(GUESSES // 2):
        assert sign_in(guesser, "not-the-admin-token").status_code == 401
    refused = guesser.get("/admin/login")
    assert refused.status_code == 429
    page = refused.get_data(as_text=True)
    assert "Sign in" in page and MESSAGE in page
    assert guesser.get("/admin/").status_code == 429  # not signed in, nor a way to


def test_a_throttled_sign_in_with_the_right_token_is_refused(throttled_app: Flask) -> None:
    guesser = client_at(throttled_app, "192.0.2.5")
    csrf = csrf_of(guesser.get("/admin/login").get_data(as_text=True))
    for _ in range(GUESSES):
        response = guesser.post("/admin/login", data={"token": "wrong", "csrf_token": csrf})
        assert response.status_code == 401
    right = guesser.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf_token": csrf})
    assert right.status_code == 429
    with guesser.session_transaction() as session:
        assert "admin" not in session


def test_the_client_address_comes_from_x_forwarded_for_only_behind_a_proxy(
    make_app: Callable[..., Flask], app: Flask
) -> None:
    def guesses_until_refused(proxied: Flask, spoofed: bool) -> int:
        client = client_at(proxied, "10.1.1.1")  # the proxy
        for count in range(1, 3 * GUESSES):
            # A client naming a fresh address of its own each time; the proxy appends the
            # address it saw, always the same one.
            forwarded = f"198.51.100.{count}, 203.0.113.9" if spoofed else "203.0.113.9"
            headers = {**WRONG, "X-Forwarded-For": forwarded}
            if client.get("/api/passes", headers=headers).status_code == 429:
                return count
        return 0

    assert guesses_until_refused(make_app(FORWARDED_FOR_PROXIES=1), spoofed=True) == GUESSES + 1
    # Without a trusted proxy the header is ignored: the connection's address counts.
    assert guesses_until_refused(make_app(), spoofed=True) == GUESSES + 1
    behind = make_app(FORWARDED_FOR_PROXIES=1)
    first = client_at(behind, "10.1.1.1")
    for _ in range(GUESSES + 1):
        first.get("/api/passes", headers={**WRONG, "X-Forwarded-For": "203.0.113.9"})
    # Another client behind the same proxy is not slowed down by the first one's guesses.
    other = first.get("/api/passes", headers={**RIGHT, "X-Forwarded-For": "203.0.113.10"})
    assert other.status_code == 200


def test_an_unusable_storage_uri_stops_start_up_naming_it(
    make_app: Callable[..., Flask], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        make_app(RATELIMIT_STORAGE_URI="nosuchstore://localhost")
    assert stopped.value.code == 3
    message = capsys.readouterr().err
    assert "RATELIMIT_STORAGE_URI" in message
    assert "Traceback" not in message
