"""The WSGI middleware: the request log (the other two are tested where they show: a "//"
path in tests/test_webservice.py, a NUL in tests/test_hostile_input.py)."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.conftest import ADMIN_TOKEN, Admin
from tests.test_webservice import PUSH_TOKEN, auth, registration_url


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
