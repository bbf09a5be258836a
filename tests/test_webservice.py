"""Apple's pass web service, as an iPhone uses it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.http import http_date, parse_date

from models import Device, Registration, db
from passes.tokens import authentication_token
from tests.conftest import ADMIN_TOKEN, SECRET_KEY, Admin
from tests.pkpass_tools import openssl_verify, pass_json, unzip

DEVICE = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
PUSH_TOKEN = "ab" * 32
BASE = "/wallet/v1"


def auth(pass_: dict[str, Any]) -> dict[str, str]:
    token = authentication_token(SECRET_KEY, pass_["passTypeIdentifier"], pass_["serialNumber"])
    return {"Authorization": f"ApplePass {token}"}


def registration_url(pass_: dict[str, Any], device: str = DEVICE) -> str:
    return (
        f"{BASE}/devices/{device}/registrations/"
        f"{pass_['passTypeIdentifier']}/{pass_['serialNumber']}"
    )


def serials_url(pass_: dict[str, Any], device: str = DEVICE) -> str:
    return f"{BASE}/devices/{device}/registrations/{pass_['passTypeIdentifier']}"


def pass_url(pass_: dict[str, Any]) -> str:
    return f"{BASE}/passes/{pass_['passTypeIdentifier']}/{pass_['serialNumber']}"


def register(client: FlaskClient, pass_: dict[str, Any], device: str = DEVICE) -> Any:
    return client.post(
        registration_url(pass_, device), headers=auth(pass_), json={"pushToken": PUSH_TOKEN}
    )


def test_pass_walks_the_whole_protocol(
    client: FlaskClient, admin: Admin, chain_files: dict[str, Path], tmp_path: Path
) -> None:
    created = admin.create_pass(serialNumber="walk-1", **{"pass": {"logoText": "Walk"}})

    # The device downloads the pass (from the admin link, a mail, a web page) ...
    downloaded = admin.get(f"/api/passes/{created['passTypeIdentifier']}/walk-1/pkpass").data
    inside = pass_json(downloaded)
    assert inside["webServiceURL"] == "https://passes.example.test/wallet"
    token = inside["authenticationToken"]
    headers = {"Authorization": f"ApplePass {token}"}

    # ... registers with the token the pass carries ...
    assert register(client, created).status_code == 201

    # ... asks which passes changed: all of them, the first time.
    listed = client.get(serials_url(created))
    assert listed.status_code == 200
    assert listed.get_json()["serialNumbers"] == ["walk-1"]
    tag = listed.get_json()["lastUpdated"]
    assert isinstance(tag, str)
    assert (
        client.get(serials_url(created), query_string={"passesUpdatedSince": tag}).status_code
        == 204
    )

    # ... fetches the pass: signed, and verified by openssl against the fake root.
    fetched = client.get(pass_url(created), headers=headers)
    assert fetched.status_code == 200
    assert fetched.mimetype == "application/vnd.apple.pkpass"
    assert openssl_verify(unzip(fetched.data), chain_files["root"], tmp_path).returncode == 0
    last_modified = fetched.headers["Last-Modified"]

    # ... and gets a 304 while it holds the current version.
    again = client.get(pass_url(created), headers={**headers, "If-Modified-Since": last_modified})
    assert again.status_code == 304
    assert again.data == b""

    # The business changes the pass.
    patched = admin.patch(
        f"/api/passes/{created['passTypeIdentifier']}/walk-1",
        json={
            "pass": {
                "storeCard": {
                    "secondaryFields": [{"key": "member", "label": "MEMBER", "value": "Ada"}]
                }
            }
        },
    )
    assert patched.status_code == 200
    assert int(patched.get_json()["updateTag"]) > int(created["updateTag"])

    # The device (told by a push) asks again with its tag and learns of the change ...
    changed = client.get(serials_url(created), query_string={"passesUpdatedSince": tag})
    assert changed.status_code == 200
    assert changed.get_json()["serialNumbers"] == ["walk-1"]
    assert int(changed.get_json()["lastUpdated"]) > int(tag)

    # ... and fetches the new version, even with the old date and within the same second.
    newer = client.get(pass_url(created), headers={**headers, "If-Modified-Since": last_modified})
    assert newer.status_code == 200
    assert pass_json(newer.data)["storeCard"]["secondaryFields"][0]["value"] == "Ada"
    assert openssl_verify(unzip(newer.data), chain_files["root"], tmp_path).returncode == 0

    # The customer deletes the pass from Wallet.
    assert client.delete(registration_url(created), headers=headers).status_code == 200
    assert client.get(serials_url(created)).status_code == 204

    # Wallet reports a problem it met.
    logged = client.post(f"{BASE}/log", json={"logs": ["Web service error for pass.x: 500"]})
    assert logged.status_code == 200
    logs = admin.get("/api/logs").get_json()["logs"]
    assert logs[0]["message"] == "Web service error for pass.x: 500"


def test_register_twice_returns_200_and_keeps_one_row_with_the_new_push_token(
    app: Flask, client: FlaskClient, admin: Admin
) -> None:
    created = admin.create_pass()
    assert register(client, created).status_code == 201
    second = client.post(
        registration_url(created), headers=auth(created), json={"pushToken": "cd" * 32}
    )
    assert second.status_code == 200
    with app.app_context():
        assert db.session.query(Registration).count() == 1
        assert db.session.query(Device).one().push_token == "cd" * 32


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "ApplePass wrong-token-wrong-token"},
        {"Authorization": f"Bearer {ADMIN_TOKEN}"},
        {"Authorization": "ApplePass"},
    ],
)
def test_register_without_the_right_token_is_401_and_stores_nothing(
    app: Flask, client: FlaskClient, admin: Admin, headers: dict[str, str]
) -> None:
    created = admin.create_pass()
    response = client.post(
        registration_url(created), headers=headers, json={"pushToken": PUSH_TOKEN}
    )
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    with app.app_context():
        assert db.session.query(Device).count() == 0


def test_unknown_pass_and_wrong_token_answer_alike(client: FlaskClient, admin: Admin) -> None:
    created = admin.create_pass()
    unknown = {**created, "serialNumber": "no-such-pass"}
    # A valid-looking token for a pass that does not exist.
    unknown_answer = client.post(
        registration_url(unknown), headers=auth(unknown), json={"pushToken": PUSH_TOKEN}
    )
    wrong_answer = client.post(
        registration_url(created), headers=auth(unknown), json={"pushToken": PUSH_TOKEN}
    )
    assert unknown_answer.status_code == wrong_answer.status_code == 401
    assert client.get(pass_url(unknown), headers=auth(unknown)).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"pushToken": 5}',
        b'{"pushToken": "not hex!"}',
        b"{}",
        b'{"pushToken": "' + b"a" * 300 + b'"}',
    ],
)
def test_register_with_a_bad_body_is_400_and_stores_nothing(
    app: Flask, client: FlaskClient, admin: Admin, body: bytes
) -> None:
    created = admin.create_pass()
    response = client.post(
        registration_url(created), headers=auth(created), data=body, content_type="application/json"
    )
    assert response.status_code == 400
    assert "message" in response.get_json()
    with app.app_context():
        assert db.session.query(Device).count() == 0


def test_oversize_body_is_413(client: FlaskClient, admin: Admin) -> None:
    created = admin.create_pass()
    response = client.post(
        registration_url(created),
        headers=auth(created),
        data=b'{"pushToken": "' + b"a" * 100_000 + b'"}',
        content_type="application/json",
    )
    assert response.status_code == 413
    assert response.get_json()["error"] == "request_entity_too_large"
    # 20 kB of log messages is within the app's limit for admin uploads, not Wallet's.
    logged = client.post("/wallet/v1/log", json={"logs": ["x" * 1000] * 20})
    assert logged.status_code == 413
    assert admin.get("/api/logs").get_json()["logs"] == []


def test_over_long_path_parts_are_400(client: FlaskClient, admin: Admin) -> None:
    created = admin.create_pass()
    too_long = registration_url(created, device="d" * 500)
    assert (
        client.post(too_long, headers=auth(created), json={"pushToken": PUSH_TOKEN}).status_code
        == 400
    )
    long_serial = {**created, "serialNumber": "s" * 500}
    assert client.get(pass_url(long_serial), headers=auth(long_serial)).status_code == 400
    assert client.get(serials_url(created, device="d" * 500)).status_code == 400


def test_an_over_long_path_part_is_named_in_the_error(client: FlaskClient, admin: Admin) -> None:
    created = admin.create_pass()
    response = client.get(serials_url(created, device="d" * 500))
    assert response.get_json()["path"] == "deviceLibraryIdentifier"


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"pushToken": 5}',
        b"[" * 100_000,
        b'{"pushToken": "' + b"a" * 100_000 + b'"}',
    ],
    ids=["not json", "wrong type", "too deep", "too large"],
)
def test_a_wrong_token_is_401_before_anything_about_the_body(
    client: FlaskClient, admin: Admin, body: bytes
) -> None:
    created = admin.create_pass()
    unknown = {**created, "serialNumber": "no-such-pass"}
    wrong = {"Authorization": "ApplePass wrong-token-wrong-token"}
    personalize = f"{pass_url(created)}/personalize"
    for url, headers in (
        (registration_url(created), wrong),
        (registration_url(unknown), auth(unknown)),  # a valid token, but no such pass
        (personalize, wrong),
    ):
        response = client.post(url, headers=headers, data=body, content_type="application/json")
        assert response.status_code == 401, (url, response.get_json())
        assert response.headers["WWW-Authenticate"] == "ApplePass"


def test_serial_list_reports_only_this_devices_passes(client: FlaskClient, admin: Admin) -> None:
    mine = admin.create_pass(serialNumber="mine")
    other = admin.create_pass(serialNumber="other")
    register(client, mine)
    register(client, other, device="another-device")
    listed = client.get(serials_url(mine)).get_json()
    assert listed["serialNumbers"] == ["mine"]


def test_serial_list_reports_exactly_the_passes_changed_since_the_tag(
    client: FlaskClient, admin: Admin
) -> None:
    passes = [admin.create_pass(serialNumber=f"p{i}") for i in range(3)]
    for pass_ in passes:
        register(client, pass_)
    tag = client.get(serials_url(passes[0])).get_json()["lastUpdated"]
    for serial in ("p0", "p2"):
        admin.patch(
            f"/api/passes/{passes[0]['passTypeIdentifier']}/{serial}",
            json={"pass": {"logoText": serial}},
        )
    changed = client.get(
        serials_url(passes[0]), query_string={"passesUpdatedSince": tag}
    ).get_json()
    assert changed["serialNumbers"] == ["p0", "p2"]


@pytest.mark.parametrize("tag", ["not-a-number", "1700000000000", "-1"])
def test_a_tag_we_never_issued_gets_every_pass(client: FlaskClient, admin: Admin, tag: str) -> None:
    # Devices moved here from a server that used timestamps must not be stuck forever.
    created = admin.create_pass()
    register(client, created)
    listed = client.get(serials_url(created), query_string={"passesUpdatedSince": tag})
    assert listed.status_code == 200
    assert listed.get_json()["serialNumbers"] == [created["serialNumber"]]


def test_unknown_device_gets_204(client: FlaskClient, admin: Admin) -> None:
    created = admin.create_pass()
    assert client.get(serials_url(created, device="never-registered")).status_code == 204


def test_two_updates_in_one_second_both_reach_a_device_holding_the_first(
    client: FlaskClient, admin: Admin
) -> None:
    created = admin.create_pass()
    url = f"/api/passes/{created['passTypeIdentifier']}/{created['serialNumber']}"
    admin.patch(url, json={"pass": {"logoText": "one"}})
    first = client.get(pass_url(created), headers=auth(created))
    admin.patch(url, json={"pass": {"logoText": "two"}})
    second = client.get(
        pass_url(created),
        headers={**auth(created), "If-Modified-Since": first.headers["Last-Modified"]},
    )
    # Whether or not both updates fell in the same second, the device gets version two.
    assert second.status_code == 200
    assert pass_json(second.data)["logoText"] == "two"


def test_if_modified_since_in_the_past_gets_the_pass(client: FlaskClient, admin: Admin) -> None:
    created = admin.create_pass()
    old = http_date(parse_date("Mon, 01 Jan 2024 00:00:00 GMT"))
    response = client.get(pass_url(created), headers={**auth(created), "If-Modified-Since": old})
    assert response.status_code == 200


def test_a_later_if_modified_since_in_another_date_format_gets_304(
    client: FlaskClient, admin: Admin
) -> None:
    created = admin.create_pass()
    # RFC 850, which HTTP/1.1 still accepts, a day after the version the service holds.
    later = (datetime.now(UTC) + timedelta(days=1)).strftime("%A, %d-%b-%y %H:%M:%S GMT")
    response = client.get(pass_url(created), headers={**auth(created), "If-Modified-Since": later})
    assert response.status_code == 304


def test_head_answers_headers_without_the_body(client: FlaskClient, admin: Admin) -> None:
    created = admin.create_pass()
    response = client.head(pass_url(created), headers=auth(created))
    assert response.status_code == 200
    assert response.headers["Last-Modified"]
    assert response.data == b""
    assert client.head(pass_url(created)).status_code == 401


def test_get_pass_with_a_bad_token_is_401(client: FlaskClient, admin: Admin) -> None:
    created = admin.create_pass()
    response = client.get(pass_url(created), headers={"Authorization": "ApplePass x" * 3})
    assert response.status_code == 401


def test_unregister_with_a_bad_token_is_401_and_keeps_the_registration(
    app: Flask, client: FlaskClient, admin: Admin
) -> None:
    created = admin.create_pass()
    register(client, created)
    response = client.delete(registration_url(created), headers={"Authorization": "ApplePass nope"})
    assert response.status_code == 401
    with app.app_context():
        assert db.session.query(Registration).count() == 1


def test_unregister_the_last_pass_forgets_the_device(
    app: Flask, client: FlaskClient, admin: Admin
) -> None:
    one, two = admin.create_pass(), admin.create_pass()
    register(client, one)
    register(client, two)
    client.delete(registration_url(one), headers=auth(one))
    with app.app_context():
        assert db.session.query(Device).count() == 1
    client.delete(registration_url(two), headers=auth(two))
    with app.app_context():
        assert db.session.query(Device).count() == 0


def test_web_service_url_with_a_trailing_slash_is_served(client: FlaskClient, admin: Admin) -> None:
    created = admin.create_pass()
    url = registration_url(created).replace("/wallet/v1", "/wallet//v1")
    assert (
        client.post(url, headers=auth(created), json={"pushToken": PUSH_TOKEN}).status_code == 201
    )
    assert (
        client.get(
            pass_url(created).replace("/wallet/v1", "/wallet//v1"), headers=auth(created)
        ).status_code
        == 200
    )


@pytest.mark.parametrize("body", [b"nope", b'{"logs": "one"}', b'{"logs": [1, 2]}', b"{}"])
def test_log_rejects_malformed_bodies(client: FlaskClient, admin: Admin, body: bytes) -> None:
    response = client.post(f"{BASE}/log", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
    assert admin.get("/api/logs").get_json()["logs"] == []


def test_log_keeps_messages_bounded(client: FlaskClient, admin: Admin) -> None:
    too_many = client.post(f"{BASE}/log", json={"logs": ["x"] * 101})
    assert too_many.status_code == 400
    long_one = client.post(f"{BASE}/log", json={"logs": ["y" * 10_000]})
    assert long_one.status_code == 200
    assert len(admin.get("/api/logs").get_json()["logs"][0]["message"]) == 2000


def test_wallet_log_messages_are_logged_on_one_line_with_controls_escaped(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Anyone can post to /v1/log: a message must not write a line of its own into our log,
    nor send escape codes to the terminal of whoever reads it."""
    forged = "ok\n2030-01-01 00:00:00,000 INFO passes.admin admin login\r\x1b[2K\x1b[31mred"
    caplog.set_level(logging.INFO)
    assert client.post(f"{BASE}/log", json={"logs": [forged]}).status_code == 200
    lines = [line for line in caplog.text.splitlines() if "passes" in line]
    written = [line for line in lines if "wallet log" in line or "admin login" in line]
    assert written == [
        written[0].partition("wallet log: ")[0]
        + "wallet log: ok\\n2030-01-01 00:00:00,000 INFO passes.admin admin login"
        + "\\r\\x1b[2K\\x1b[31mred"
    ]
    assert "\x1b" not in caplog.text


def test_unknown_route_and_wrong_method_answer_json(client: FlaskClient) -> None:
    missing = client.get("/wallet/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.get_json()["error"] == "not_found"
    wrong = client.put(f"{BASE}/log", json={})
    assert wrong.status_code == 405
    assert "POST" in wrong.headers["Allow"]
