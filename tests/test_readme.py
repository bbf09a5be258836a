"""The README's examples work against the real service, as written."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.conftest import ADMIN_TOKEN, Admin
from tests.pkpass_tools import pass_json

README = Path(__file__).resolve().parent.parent / "README.md"
PASS_TYPE = "pass.com.example.test"


def python_block(after_heading: str) -> str:
    """The first ```python block under a heading of the README."""
    text = README.read_text()
    section = text[text.index(after_heading) :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, f"no python block under {after_heading}"
    return match.group(1)


@pytest.fixture
def live_server(make_app: Callable[..., Flask], app: Flask) -> Iterator[str]:
    served = make_app()
    http = make_server("127.0.0.1", 0, served, threaded=True)
    base = f"http://127.0.0.1:{http.server_port}"
    served.config.update(PUBLIC_URL=base)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield base
    http.shutdown()
    http.server_close()
    thread.join(timeout=10)


def test_the_backend_example_creates_a_card_and_shows_points(
    live_server: str, admin: Admin
) -> None:
    code = python_block("### From your backend")
    # Only the three settings a reader fills in differ; the rest runs exactly as printed.
    settings = {
        'PASS_SERVER = "https://passes.example.com"': f'PASS_SERVER = "{live_server}"',
        'ADMIN_TOKEN = "..."': f'ADMIN_TOKEN = "{ADMIN_TOKEN}"',
        'PASS_TYPE = "pass.com.example.shop"': f'PASS_TYPE = "{PASS_TYPE}"',
    }
    for printed, ours in settings.items():
        assert printed in code
        code = code.replace(printed, ours)
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README

    assert str(namespace["link"]).startswith(f"{live_server}/p/")
    pkpass = admin.get(f"/api/passes/{PASS_TYPE}/member-42/pkpass")
    assert pkpass.status_code == 200
    card = pass_json(pkpass.data)["storeCard"]
    assert card["headerFields"][0]["value"] == 120
    assert card["secondaryFields"][0]["value"] == "Ada Lovelace"
    assert card["primaryFields"][0]["key"] == "balance"  # the template's fields stay
    assert pass_json(pkpass.data)["barcodes"][0]["message"] == "member-42"
