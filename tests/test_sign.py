"""Signing as a service: POST /api/sign and `flask passes sign`."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from models import Pass, db
from passes.signing import zip_files
from tests.conftest import Admin
from tests.pkpass_tools import openssl_verify, pass_json, unzip

TEMPLATE = Path(__file__).parent.parent / "pass_templates/storecard"


def package(prefix: str = "", **changes: object) -> dict[str, bytes]:
    files = {
        p.relative_to(TEMPLATE).as_posix(): p.read_bytes()
        for p in TEMPLATE.rglob("*")
        if p.is_file()
    }
    data = json.loads(files["pass.json"])
    data.update(
        {
            "passTypeIdentifier": "pass.com.example.test",
            "teamIdentifier": "ABCDE12345",
            "serialNumber": "designed-1",
        }
    )
    data.update(changes)
    files["pass.json"] = json.dumps({k: v for k, v in data.items() if v is not None}).encode()
    return {prefix + name: content for name, content in files.items()}


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def sign(admin: Admin, body: bytes, **query: str) -> object:
    return admin.post("/api/sign", data=body, content_type="application/zip", query_string=query)


def test_the_same_files_zip_to_the_same_bytes_whatever_the_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = package()
    monkeypatch.setattr(time, "time", lambda: 1_600_000_000.0)
    first = zip_files(files)
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)

    assert zip_files(files) == first
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert {entry.filename: archive.read(entry) for entry in archive.infolist()} == files
        assert {entry.compress_type for entry in archive.infolist()} == {zipfile.ZIP_STORED}


@pytest.mark.parametrize("prefix", ["", "Bean There.pass/"])
def test_an_unsigned_package_comes_back_signed_and_nothing_is_stored(
    app: Flask, admin: Admin, chain_files: dict[str, Path], tmp_path: Path, prefix: str
) -> None:
    response = sign(admin, zipped(package(prefix)))
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/vnd.apple.pkpass"
    files = unzip(response.data)
    assert "icon.png" in files and "fr.lproj/pass.strings" in files
    assert openssl_verify(files, chain_files["root"], tmp_path).returncode == 0
    with app.app_context():
        assert db.session.query(Pass).count() == 0


def test_store_keeps_it_as_a_served_pass(admin: Admin) -> None:
    response = sign(admin, zipped(package()), store="true")
    assert response.status_code == 200
    assert pass_json(response.data)["webServiceURL"] == "https://passes.example.test/wallet"
    assert admin.get("/api/passes/pass.com.example.test/designed-1").status_code == 200


def test_a_package_for_another_certificate_is_422(admin: Admin) -> None:
    response = sign(admin, zipped(package(teamIdentifier="ZZZZZ99999")))
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["path"] == "$.teamIdentifier"


def test_an_invalid_package_is_422_with_its_problems(admin: Admin) -> None:
    files = package(backgroundColor="blue")
    del files["icon.png"], files["icon@2x.png"]
    response = sign(admin, zipped(files))
    assert response.status_code == 422
    paths = {p["path"] for p in response.get_json()["errors"]}
    assert "$.backgroundColor" in paths
    assert any("icon" in path for path in paths)


def test_not_a_zip_no_pass_json_and_zip_bombs_are_400(admin: Admin) -> None:
    assert sign(admin, b"not a zip").status_code == 400
    assert sign(admin, zipped({"readme.txt": b"hi"})).status_code == 400
    bomb = zipped({"pass.json": b"{}", "big.png": b"\0" * (25 * 1024 * 1024)})
    assert len(bomb) < 100_000
    response = sign(admin, bomb)
    assert response.status_code == 400
    assert "unpacks to more than" in response.get_json()["message"]
    many = zipped({f"f{i}.png": b"x" for i in range(300)})
    assert sign(admin, many).status_code == 400


def test_cli_signs_a_folder(
    runner: FlaskCliRunner, tmp_path: Path, chain_files: dict[str, Path]
) -> None:
    folder = tmp_path / "card.pass"
    for name, content in package().items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    output = tmp_path / "card.pkpass"
    result = runner.invoke(args=["passes", "sign", str(folder), "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert (
        openssl_verify(unzip(output.read_bytes()), chain_files["root"], tmp_path / "v").returncode
        == 0
    )
    (folder / "pass.json").write_text(json.dumps({"formatVersion": 1}))
    refused = runner.invoke(args=["passes", "sign", str(folder), "-o", str(output)])
    assert refused.exit_code == 1
    assert "refused by Wallet" in refused.output


def test_every_file_a_stored_package_holds_can_be_removed_through_the_api(admin: Admin) -> None:
    odd = "odd name (1).png"  # a name the admin API would not take for a new file
    response = sign(
        admin, zipped({**package(), odd: TEMPLATE.joinpath("icon.png").read_bytes()}), store="true"
    )
    assert response.status_code == 200
    url = "/api/passes/pass.com.example.test/designed-1"
    assert odd in admin.get(url).get_json()["files"]
    removed = admin.patch(url, json={"files": {odd: None}})
    assert removed.status_code == 200, removed.get_json()
    assert odd not in removed.get_json()["files"]
    assert odd not in unzip(admin.get(url + "/pkpass").data)
    # Adding a file under such a name is still refused.
    added = admin.patch(url, json={"files": {odd: "aGk="}})
    assert added.status_code == 400
    assert added.get_json()["path"] == f"$.files.{odd}"


def test_a_stored_package_with_a_file_name_too_long_to_keep_is_400(
    admin: Admin, app: Flask
) -> None:
    name = "a" * 300 + ".png"
    response = sign(admin, zipped({**package(), name: b"x"}), store="true")
    assert response.status_code == 400, response.get_json()
    with app.app_context():
        assert db.session.query(Pass).count() == 0
