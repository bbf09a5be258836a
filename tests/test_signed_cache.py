"""A pass version is signed once per web process, and a changed version is never served stale."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from passes import store
from passes.signed_cache import SignedCache
from tests.conftest import Admin
from tests.pkpass_tools import pass_json, png_with_text, unzip
from tests.test_webservice import auth, pass_url

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def signatures(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts real signings: each call still signs (the cache is what is tested)."""
    made: list[str] = []
    real = store.sign_package

    def counting(files, credentials, digests=None):  # type: ignore[no-untyped-def]
        made.append(json.loads(files["pass.json"])["serialNumber"])
        return real(files, credentials, digests)

    monkeypatch.setattr(store, "sign_package", counting)
    return made


def test_many_devices_downloading_one_version_cost_one_signature(
    app: Flask, admin: Admin, signatures: list[str]
) -> None:
    created = admin.create_pass(serialNumber="shared-1")
    downloads = [app.test_client().get(pass_url(created), headers=auth(created)) for _ in range(5)]
    assert {response.status_code for response in downloads} == {200}
    assert len({response.data for response in downloads}) == 1
    assert signatures == ["shared-1"]


def test_a_changed_pass_is_signed_again_and_served_new(
    app: Flask, admin: Admin, signatures: list[str]
) -> None:
    created = admin.create_pass(serialNumber="changing-1", **{"pass": {"logoText": "Old"}})
    client = app.test_client()
    assert pass_json(client.get(pass_url(created), headers=auth(created)).data)["logoText"] == "Old"
    url = f"/api/passes/{created['passTypeIdentifier']}/changing-1"
    assert admin.patch(url, json={"pass": {"logoText": "New"}}).status_code == 200
    assert pass_json(client.get(pass_url(created), headers=auth(created)).data)["logoText"] == "New"
    assert pass_json(client.get(pass_url(created), headers=auth(created)).data)["logoText"] == "New"
    assert signatures == ["changing-1", "changing-1"]


def test_a_template_changed_by_another_process_is_served_without_a_stale_copy(
    app: Flask, make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    client = app.test_client()
    created = Admin(client).create_pass(serialNumber="template-edit-1")
    before = unzip(client.get(pass_url(created), headers=auth(created)).data)

    # The icon replaced in place (the old cache compared only folder and pass.json times).
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "pass_templates", templates)
    icon = templates / "storecard" / "icon.png"
    icon.write_bytes(png_with_text(icon.read_bytes(), b"edited"))
    pass_file = templates / "storecard" / "pass.json"
    template = json.loads(pass_file.read_text())
    template["description"] = "Edited in the folder"
    pass_file.write_text(json.dumps(template))
    make_app(PASS_TEMPLATES_DIR=str(templates))  # another server starting imports it

    after = unzip(client.get(pass_url(created), headers=auth(created)).data)
    assert json.loads(before["pass.json"])["description"] != "Edited in the folder"
    assert json.loads(after["pass.json"])["description"] == "Edited in the folder"
    assert after["icon.png"] == icon.read_bytes() != before["icon.png"]


def test_the_cache_keeps_the_most_recently_served_versions_within_its_size() -> None:
    cache = SignedCache(max_bytes=10)
    cache.put("a", 1, b"aaaa")
    cache.put("b", 1, b"bbbb")
    assert cache.get("a", 1) == b"aaaa"  # now the most recently served
    cache.put("c", 1, b"cccc")  # 12 bytes: the least recently served goes
    assert cache.get("b", 1) is None
    assert cache.get("a", 1) == b"aaaa"
    assert cache.get("a", 2) is None  # another version of "a" is not these bytes
    cache.put("a", 2, b"a2")
    assert cache.get("a", 1) is None
    cache.put("huge", 1, b"x" * 11)  # larger than the whole cache: not kept
    assert cache.get("huge", 1) is None
