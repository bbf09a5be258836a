"""Templates in the database: uploaded as zips, versioned, imported, and reaching the phones."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from models import Pass, PassTemplate, PendingPush, TemplateVersion, db
from passes import packages, pass_templates, store
from passes.validation import validate_package
from tests.conftest import ADMIN_TOKEN, Admin
from tests.pkpass_tools import openssl_verify, pass_json, png_with_text, unzip
from tests.test_cli import invoke
from tests.test_dashboard import csrf_of, sign_in
from tests.test_verify import zip_pass as zipped
from tests.test_webservice import auth, pass_url, register, serials_url

ROOT = Path(__file__).resolve().parent.parent
ICON = (ROOT / "pass_templates/storecard/icon.png").read_bytes()
ICON_2X = (ROOT / "pass_templates/storecard/icon@2x.png").read_bytes()
TYPE = "pass.com.example.test"

# What Apple's Pass Designer saves: its own identifiers (replaced by the service's), and
# tooling.json beside the pass.
DESIGNER_PASS = {
    "formatVersion": 1,
    "passTypeIdentifier": "pass.com.designer.placeholder",
    "teamIdentifier": "DESIGNER00",
    "serialNumber": "designer-sample",
    "organizationName": "Corner Bakery",
    "description": "Corner Bakery coupon",
    "backgroundColor": "rgb(240, 200, 120)",
    "coupon": {
        "primaryFields": [{"key": "offer", "label": "OFFER", "value": "{{data.userInfo.offer}}"}]
    },
    "barcodes": [
        {
            "format": "PKBarcodeFormatQR",
            "message": "coupon-{{serialNumber}}",
            "messageEncoding": "iso-8859-1",
            "altText": "{{serialNumber}}",
        }
    ],
}
TOOLING = b'{"version": 1, "editor": "Pass Designer"}'


def designer_files(**changes: Any) -> dict[str, bytes]:
    return {
        "pass.json": json.dumps({**DESIGNER_PASS, **changes}).encode(),
        "icon.png": ICON,
        "icon@2x.png": ICON_2X,
        "tooling.json": TOOLING,
    }


def put(admin: Admin, name: str, body: bytes) -> Any:
    return admin.put(f"/api/templates/{name}", data=body, content_type="application/zip")


def put_designer(admin: Admin, name: str = "coupon", **changes: Any) -> dict[str, Any]:
    response = put(admin, name, zipped(designer_files(**changes), folder="Coupon.pkpasstemplate/"))
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def coupon(admin: Admin, serial: str, offer: str = "2 for 1") -> dict[str, Any]:
    return admin.create_pass(
        template="coupon", serialNumber=serial, **{"pass": {"userInfo": {"offer": offer}}}
    )


def test_a_pass_designer_template_becomes_passes_that_sign_and_verify(
    admin: Admin, chain_files: dict[str, Path], tmp_path: Path
) -> None:
    response = put(admin, "coupon", zipped(designer_files(), folder="Coupon.pkpasstemplate/"))
    assert response.status_code == 201, response.get_json()
    answer = response.get_json()
    assert answer["version"] == 1 and answer["changed"] is True
    assert answer["files"] == ["icon.png", "icon@2x.png"]  # tooling.json is not the pass's

    coupon(admin, "c-1")
    pkpass = admin.get(f"/api/passes/{TYPE}/c-1/pkpass").data
    files = unzip(pkpass)
    assert openssl_verify(files, chain_files["root"], tmp_path).returncode == 0
    assert "tooling.json" not in files
    inside = json.loads(files["pass.json"])
    assert inside["passTypeIdentifier"] == TYPE and inside["teamIdentifier"] != "DESIGNER00"
    assert inside["barcodes"][0]["message"] == "coupon-c-1"
    assert inside["coupon"]["primaryFields"][0]["value"] == "2 for 1"


def test_templates_are_listed_shown_and_downloaded_as_zip(admin: Admin) -> None:
    put_designer(admin)
    coupon(admin, "c-2")
    listed = {t["name"]: t for t in admin.get("/api/templates").get_json()["templates"]}
    assert listed["coupon"]["passes"] == 1 and listed["coupon"]["version"] == 1
    assert listed["coupon"]["source"] == "upload"
    assert listed["storecard"]["source"] == "folder"
    shown = admin.get("/api/templates/coupon").get_json()
    assert shown["pass"]["organizationName"] == "Corner Bakery"
    download = admin.get("/api/templates/coupon?format=zip")
    assert download.mimetype == "application/zip"
    again = put(admin, "coupon", download.data).get_json()
    assert again["changed"] is False and again["version"] == 1  # the same content


def test_a_changed_image_reaches_a_registered_device_on_its_next_download(
    app: Flask, client: FlaskClient, admin: Admin
) -> None:
    created = coupon_with_device(app, client, admin)
    tag = client.get(serials_url(created)).get_json()["lastUpdated"]
    assert pending_pushes(app) == 0

    new_icon = png_with_text(ICON, b"new look")
    files = {**designer_files(), "icon.png": new_icon}
    answer = put(admin, "coupon", zipped(files)).get_json()
    assert answer["version"] == 2 and answer["passesUpdated"] == 1

    # In the same transaction: the device is queued for a push, the pass is listed as
    # changed, and its download carries the new icon.
    assert pending_pushes(app) == 1
    changed = client.get(f"{serials_url(created)}?passesUpdatedSince={tag}").get_json()
    assert changed["serialNumbers"] == ["c-3"]
    fetched = unzip(client.get(pass_url(created), headers=auth(created)).data)
    assert fetched["icon.png"] == new_icon


def pending_pushes(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(PendingPush)) or 0


def coupon_with_device(app: Flask, client: FlaskClient, admin: Admin) -> dict[str, Any]:
    put_designer(admin)
    created = coupon(admin, "c-3")
    assert register(client, created).status_code == 201
    before = unzip(client.get(pass_url(created), headers=auth(created)).data)
    assert before["icon.png"] == ICON
    with app.app_context():
        db.session.execute(sa.delete(PendingPush))  # as if the registration's push was sent
        db.session.commit()
    return created


def test_an_unchanged_put_is_no_new_version_and_pushes_nobody(
    app: Flask, client: FlaskClient, admin: Admin
) -> None:
    coupon_with_device(app, client, admin)
    answer = put_designer(admin)
    assert answer["changed"] is False and answer["passesUpdated"] == 0
    assert pending_pushes(app) == 0


def test_delete_is_refused_while_passes_use_the_template(admin: Admin) -> None:
    put_designer(admin)
    coupon(admin, "c-4")
    coupon(admin, "c-5")
    refused = admin.delete("/api/templates/coupon")
    assert refused.status_code == 409
    assert "2 pass(es)" in refused.get_json()["message"]
    put_designer(admin, name="unused")
    assert admin.delete("/api/templates/unused").status_code == 200
    assert admin.get("/api/templates/unused").status_code == 404
    assert admin.delete("/api/templates/unused").status_code == 404


def test_a_template_with_problems_is_422_with_every_one(admin: Admin) -> None:
    files = designer_files(backgroundColor="reddish", organizationName=5)
    del files["icon.png"], files["icon@2x.png"]
    response = put(admin, "broken", zipped(files))
    assert response.status_code == 422
    paths = {p["path"] for p in response.get_json()["errors"]}
    assert {"$.backgroundColor", "$.organizationName"} <= paths
    assert any("icon" in p for p in paths)
    assert admin.get("/api/templates/broken").status_code == 404


def zip_bomb() -> bytes:
    return zipped({"pass.json": b"{}", "icon.png": bytes(packages.MAX_UNCOMPRESSED + 1)})


def lying_sizes() -> bytes:
    """A zip whose headers say its file is 10 bytes when it unpacks to more than the limit."""
    big = zipped({"pass.json": bytes(packages.MAX_UNCOMPRESSED + 1)})
    size = (packages.MAX_UNCOMPRESSED + 1).to_bytes(4, "little")
    return big.replace(size, (10).to_bytes(4, "little"))


def duplicate_names() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, pytest.warns(UserWarning):
        archive.writestr("pass.json", json.dumps(DESIGNER_PASS))
        archive.writestr("icon.png", ICON)
        archive.writestr("icon.png", b"not the icon")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (lambda: b"not a zip at all", 400, "not a zip"),
        (lambda: b"", 400, "not a zip"),
        (zip_bomb, 400, "unpacks to more than"),
        (lying_sizes, 400, ""),
        (duplicate_names, 400, "twice"),
        (lambda: zipped({**designer_files(), "../escape.png": ICON}), 422, ""),
        (lambda: zipped({**designer_files(), "/etc/passwd": b"x"}), 422, ""),
        (lambda: zipped({f"{i}.txt": b"" for i in range(packages.MAX_FILES + 1)}), 400, "files"),
        (lambda: b"PK" + bytes(6 * 1024 * 1024), 413, ""),
    ],
)
def test_hostile_zips_are_a_clear_4xx_and_nothing_is_written(
    app: Flask, admin: Admin, body: Callable[[], bytes], status: int, words: str
) -> None:
    response = put(admin, "hostile", body())
    assert response.status_code == status, response.get_json()
    assert words in response.get_json().get("message", "")
    assert admin.get("/api/templates/hostile").status_code == 404
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(TemplateVersion)) == 1


def test_a_bad_template_name_is_400(admin: Admin) -> None:
    assert put(admin, "-dash-first", zipped(designer_files())).status_code == 400
    assert admin.get("/api/templates/" + "x" * 65).status_code == 400


def test_a_missing_data_key_is_a_400_naming_the_placeholder(admin: Admin) -> None:
    put_designer(admin)
    refused = admin.post("/api/passes", json={"template": "coupon", "serialNumber": "c-6"})
    assert refused.status_code == 400
    body = refused.get_json()
    assert "{{data.userInfo.offer}}" in body["message"]
    assert body["path"] == "$.coupon.primaryFields[0].value"
    coupon(admin, "c-6")
    removed = admin.patch(f"/api/passes/{TYPE}/c-6", json={"pass": {"userInfo": None}})
    assert removed.status_code == 400 and "{{data.userInfo.offer}}" in removed.get_json()["message"]


def test_a_template_change_its_passes_cannot_fill_is_refused(admin: Admin) -> None:
    put_designer(admin)
    coupon(admin, "c-7")
    changed = {**DESIGNER_PASS, "logoText": "{{data.userInfo.shop}}"}
    response = put(
        admin, "coupon", zipped({**designer_files(), "pass.json": json.dumps(changed).encode()})
    )
    assert response.status_code == 422
    assert "pass c-7" in response.get_json()["errors"][1]["path"]
    assert admin.get("/api/templates/coupon").get_json()["version"] == 1


def test_restarts_import_the_folders_once_and_a_changed_folder_again(
    app: Flask, make_app: Callable[..., Flask], admin: Admin, tmp_path: Path
) -> None:
    make_app()
    make_app()
    assert admin.get("/api/templates/storecard").get_json()["version"] == 1
    folder = tmp_path / "templates"
    (folder / "storecard").mkdir(parents=True)
    for path in (ROOT / "pass_templates/storecard").rglob("*"):
        target = folder / "storecard" / path.relative_to(ROOT / "pass_templates/storecard")
        if path.is_dir():
            target.mkdir(exist_ok=True)
        else:
            target.write_bytes(path.read_bytes())
    (folder / "storecard" / "strip.png").write_bytes(
        png_with_text((folder / "storecard" / "strip.png").read_bytes(), b"x")
    )
    make_app(PASS_TEMPLATES_DIR=str(folder))
    make_app(PASS_TEMPLATES_DIR=str(folder))
    assert admin.get("/api/templates/storecard").get_json()["version"] == 2


def test_a_template_put_through_the_api_is_kept_over_an_unchanged_folder(
    make_app: Callable[..., Flask], admin: Admin
) -> None:
    files = packages.read_folder(ROOT / "pass_templates/storecard")
    changed = json.loads(files["pass.json"]) | {"logoText": "Uploaded"}
    files["pass.json"] = json.dumps(changed).encode()
    assert put(admin, "storecard", zipped(files)).get_json()["version"] == 2
    make_app()  # a restart: the folder did not change since it was imported
    assert admin.get("/api/templates/storecard").get_json()["pass"]["logoText"] == "Uploaded"


def test_servers_starting_together_import_a_new_template_once(app: Flask, tmp_path: Path) -> None:
    folder = tmp_path / "together"
    (folder / "coupon").mkdir(parents=True)
    for name, content in designer_files().items():
        (folder / "coupon" / name).write_bytes(content)
    # Real concurrency on the real database: each thread its own session and connection.
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def start_server() -> None:
        try:
            with app.app_context():
                start.wait(timeout=30)
                pass_templates.import_folders(folder)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=start_server) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    with app.app_context():
        versions = db.session.scalars(
            sa.select(TemplateVersion.version).where(TemplateVersion.source == "folder")
        ).all()
    assert sorted(versions) == [1, 1]  # storecard's, and coupon's once


def test_a_pass_made_before_templates_were_kept_moves_to_the_imported_version(
    app: Flask, admin: Admin, make_app: Callable[..., Flask]
) -> None:
    admin.create_pass(serialNumber="old-1")
    with app.app_context():
        # As the migration leaves it: the name, no version; and the template not yet imported.
        db.session.execute(sa.update(Pass).values(template_version_id=None))
        db.session.execute(sa.delete(PassTemplate))
        db.session.commit()
    assert admin.get(f"/api/passes/{TYPE}/old-1/pkpass").status_code == 400
    make_app()
    assert pass_json(admin.get(f"/api/passes/{TYPE}/old-1/pkpass").data)["serialNumber"] == "old-1"
    with app.app_context():
        assert db.session.scalar(sa.select(Pass.template_version_id)) is not None


# --- flask passes templates ----------------------------------------------------------------


def test_cli_puts_lists_shows_and_removes_templates_as_the_api_does(
    runner: FlaskCliRunner, admin: Admin, tmp_path: Path
) -> None:
    designer = tmp_path / "Coupon.pkpasstemplate"
    designer.mkdir()
    for name, content in designer_files().items():
        (designer / name).write_bytes(content)
    put_folder = invoke(runner, "templates", "put", "coupon", str(designer))
    assert put_folder.exit_code == 0, put_folder.output
    assert "template coupon created; 0 pass(es) updated" in put_folder.output

    archive = tmp_path / "coupon.zip"
    archive.write_bytes(zipped(designer_files(description="Changed"), "Coupon.pkpasstemplate/"))
    changed = invoke(runner, "templates", "put", "coupon", str(archive), "--json")
    assert json.loads(changed.output)["version"] == 2

    listed = invoke(runner, "templates", "list", "--json")
    assert json.loads(listed.output) == admin.get("/api/templates").get_json()
    assert "coupon\tversion 2" in invoke(runner, "templates", "list").output
    shown = invoke(runner, "templates", "show", "coupon", "--json")
    assert json.loads(shown.output) == admin.get("/api/templates/coupon").get_json()
    assert (
        "files:     icon.png, icon@2x.png" in invoke(runner, "templates", "show", "coupon").output
    )

    coupon(admin, "cli-1")
    refused = invoke(runner, "templates", "remove", "coupon")
    assert refused.exit_code == 1
    assert refused.output.strip() == (
        "error: 1 pass(es) are made from template coupon; delete or move them first"
    )
    missing = invoke(runner, "templates", "show", "nothing")
    assert missing.exit_code == 1 and "no template named 'nothing'" in missing.output


def test_cli_refuses_a_bad_template_in_lines(runner: FlaskCliRunner, tmp_path: Path) -> None:
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    result = invoke(runner, "templates", "put", "bad", str(tmp_path / "bad.zip"))
    assert result.exit_code == 1 and result.output.strip() == "error: the body is not a zip file"
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "pass.json").write_text('{"formatVersion": 1}')
    result = invoke(runner, "templates", "put", "broken", str(folder))
    assert result.exit_code == 1
    assert "icon.png" in result.output and "description" in result.output


def test_cli_import_takes_new_and_changed_folders_only(
    runner: FlaskCliRunner, tmp_path: Path
) -> None:
    folder = tmp_path / "Coupon.pkpasstemplate"  # named as Pass Designer names it
    folder.mkdir()
    for name, content in designer_files().items():
        (folder / name).write_bytes(content)
    imported = invoke(runner, "templates", "import", str(folder))
    assert imported.output == "Coupon: version 1, 0 pass(es) updated\n"
    assert invoke(runner, "templates", "import", str(folder)).output == "Coupon: unchanged\n"
    assert invoke(runner, "templates", "import").output == "storecard: unchanged\n"
    (folder / "icon.png").write_bytes(png_with_text(ICON, b"v2"))
    changed = invoke(runner, "templates", "import", str(tmp_path))  # the folder of templates
    assert changed.output == "Coupon: version 2, 0 pass(es) updated\n"
    (tmp_path / "empty").mkdir()
    empty = invoke(runner, "templates", "import", str(tmp_path / "empty"))
    assert empty.exit_code == 1 and "no template folder" in empty.output


# --- the dashboard's Templates page --------------------------------------------------------


def test_the_dashboard_lists_templates_and_takes_an_upload(
    make_app: Callable[..., Flask], admin: Admin
) -> None:
    browser = make_app().test_client()  # its own session cookies
    assert sign_in(browser, ADMIN_TOKEN).status_code == 302
    page = browser.get("/admin/templates").get_data(as_text=True)
    assert "storecard" in page
    upload = zipped(designer_files(), "Coupon.pkpasstemplate/")
    form = {"csrf_token": csrf_of(page), "name": "coupon", "zip": (io.BytesIO(upload), "c.zip")}
    done = browser.post("/admin/templates", data=form, content_type="multipart/form-data")
    assert done.status_code == 302
    listed = browser.get("/admin/templates").get_data(as_text=True)
    assert "Template coupon created; 0 pass(es) use it" in listed
    assert admin.get("/api/templates/coupon").status_code == 200

    bad = {"csrf_token": csrf_of(page), "name": "other", "zip": (io.BytesIO(b"no"), "c.zip")}
    refused = browser.post("/admin/templates", data=bad, content_type="multipart/form-data")
    assert refused.status_code == 400
    assert "the body is not a zip file" in refused.get_data(as_text=True)
    broken = zipped({"pass.json": b'{"formatVersion": 1}'})
    invalid = {"csrf_token": csrf_of(page), "name": "other", "zip": (io.BytesIO(broken), "b.zip")}
    answer = browser.post("/admin/templates", data=invalid, content_type="multipart/form-data")
    assert answer.status_code == 422 and "Nothing was saved" in answer.get_data(as_text=True)
    forged = {"name": "other", "zip": (io.BytesIO(upload), "c.zip")}
    assert browser.post("/admin/templates", data=forged).status_code in (400, 403)
    assert admin.get("/api/templates/other").status_code == 404


@pytest.mark.parametrize(
    "text",
    [
        b"[]",
        b'"a string"',
        b"{not json",
        b'{"formatVersion": NaN}',
        b'{"formatVersion": 1e999}',
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 100 + b"1" + b"}" * 100,
        b'{"description": "\\ud800"}',
        b"\xff\xfe not utf-8",
    ],
)
def test_a_hostile_pass_json_is_422_and_nothing_is_written(
    app: Flask, admin: Admin, text: bytes
) -> None:
    response = put(admin, "hostile", zipped({**designer_files(), "pass.json": text}))
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["errors"]
    assert admin.get("/api/templates/hostile").status_code == 404


def test_a_value_known_only_per_pass_is_checked_for_each_pass(admin: Admin) -> None:
    dated = {**DESIGNER_PASS, "expirationDate": "{{data.userInfo.until}}"}
    answer = put(
        admin, "dated", zipped({**designer_files(), "pass.json": json.dumps(dated).encode()})
    )
    assert answer.status_code == 201, answer.get_json()
    warned = [w for w in answer.get_json()["warnings"] if w["path"] == "$.expirationDate"]
    assert warned and "each pass is checked with its own value" in warned[0]["message"]
    good = {"userInfo": {"offer": "1", "until": "2027-01-31T23:59:00Z"}}
    assert (
        admin.post(
            "/api/passes", json={"template": "dated", "serialNumber": "d-1", "pass": good}
        ).status_code
        == 201
    )
    bad = {"userInfo": {"offer": "1", "until": "next week"}}
    refused = admin.post(
        "/api/passes", json={"template": "dated", "serialNumber": "d-2", "pass": bad}
    )
    assert refused.status_code == 422
    assert refused.get_json()["errors"][0]["path"] == "$.expirationDate"


def test_only_the_last_versions_are_kept(app: Flask, admin: Admin) -> None:
    put_designer(admin)
    coupon(admin, "keep-1")
    for number in range(2, pass_templates.KEPT_VERSIONS + 3):
        assert put_designer(admin, description=f"Version {number}")["version"] == number
    with app.app_context():
        kept = db.session.scalars(
            sa.select(TemplateVersion.version)
            .join(PassTemplate)
            .where(PassTemplate.name == "coupon")
            .order_by(TemplateVersion.version)
        ).all()
    newest = pass_templates.KEPT_VERSIONS + 2
    assert kept == list(range(newest - pass_templates.KEPT_VERSIONS + 1, newest + 1))
    pkpass = admin.get(f"/api/passes/{TYPE}/keep-1/pkpass").data
    assert pass_json(pkpass)["description"] == f"Version {newest}"


def test_a_template_version_is_read_once_per_process(
    client: FlaskClient, admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_designer(admin)
    passes = [coupon(admin, f"once-{n}") for n in range(3)]
    loads: list[int] = []
    real = store._load_template

    def counting(version_id: int) -> Any:
        loads.append(version_id)
        return real(version_id)

    monkeypatch.setattr(store, "_load_template", counting)
    put_designer(admin, description="Version 2")  # a version no process has read yet
    for created in passes:
        response = client.get(pass_url(created), headers=auth(created))
        assert response.status_code == 200
    assert len(loads) == 1


def test_cli_refuses_a_folder_that_is_no_template_or_too_big(
    runner: FlaskCliRunner, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("no pass here")
    result = invoke(runner, "templates", "put", "notes", str(tmp_path))
    assert result.exit_code == 1 and "has no pass.json" in result.output
    (tmp_path / "pass.json").write_text("{}")
    for number in range(packages.MAX_FILES + 1):
        (tmp_path / f"{number}.png").write_bytes(b"")
    result = invoke(runner, "templates", "put", "many", str(tmp_path))
    assert result.output == f"error: a pass package has at most {packages.MAX_FILES} files\n"


def test_a_template_change_that_would_leave_passes_invalid_is_refused(
    app: Flask, admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_designer(admin)
    own = {"userInfo": {"offer": "1"}, "coupon": {"secondaryFields": [{"key": "s", "value": "x"}]}}
    for serial in ("style-1", "style-2", "style-3"):
        admin.create_pass(template="coupon", serialNumber=serial, **{"pass": own})
    coupon(admin, "style-4")  # no coupon fields of its own: fine with any style
    checked: list[str] = []
    real = validate_package

    def counting(files: dict[str, bytes]) -> Any:
        checked.append(json.loads(files["pass.json"])["serialNumber"])
        return real(files)

    monkeypatch.setattr(pass_templates, "validate_package", counting)
    # The style changes under the passes' own coupon fields: two styles, which Wallet refuses.
    changed = {k: v for k, v in DESIGNER_PASS.items() if k != "coupon"}
    changed["storeCard"] = DESIGNER_PASS["coupon"]
    response = put(
        admin, "coupon", zipped({**designer_files(), "pass.json": json.dumps(changed).encode()})
    )
    assert response.status_code == 422, response.get_json()
    errors = response.get_json()["errors"]
    assert "3 pass(es) made from coupon would be invalid" in errors[0]["message"]
    assert errors[1]["path"].startswith("pass style-1: ")
    # Passes whose data has one shape are checked once; the template itself first.
    assert sorted(checked[1:]) == ["style-1", "style-4"]
    assert admin.get("/api/templates/coupon").get_json()["version"] == 1


def test_a_changed_folder_is_imported_even_when_it_leaves_passes_invalid(
    runner: FlaskCliRunner, admin: Admin, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "coupon"
    folder.mkdir()
    for name, content in designer_files().items():
        (folder / name).write_bytes(content)
    assert invoke(runner, "templates", "import", str(folder)).exit_code == 0
    own = {"userInfo": {"offer": "1"}, "coupon": {"secondaryFields": [{"key": "s", "value": "x"}]}}
    admin.create_pass(template="coupon", serialNumber="folder-1", **{"pass": own})
    changed = {k: v for k, v in DESIGNER_PASS.items() if k != "coupon"}
    changed["storeCard"] = DESIGNER_PASS["coupon"]
    (folder / "pass.json").write_text(json.dumps(changed))
    # The deploy's folder is what passes were served from before: imported, and said.
    imported = invoke(runner, "templates", "import", str(folder))
    assert imported.output == "coupon: version 2, 1 pass(es) updated\n"
    assert "1 pass(es) made from coupon would be invalid with this version: pass folder-1: $:" in (
        caplog.text
    )
