"""The admin JSON API."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from models import Pass, PendingPush, db
from passes import store
from tests.conftest import ADMIN_TOKEN, Admin
from tests.pkpass_tools import openssl_verify, pass_json, unzip
from tests.test_webservice import PUSH_TOKEN, auth, register, registration_url

PNG = (Path(__file__).parent.parent / "pass_templates/storecard/icon.png").read_bytes()


def pass_path(created: dict[str, str]) -> str:
    return f"/api/passes/{created['passTypeIdentifier']}/{created['serialNumber']}"


def test_create_from_the_template_builds_a_signed_pass_with_injected_keys(
    admin: Admin, chain_files: dict[str, Path], tmp_path: Path
) -> None:
    created = admin.create_pass(
        serialNumber="card-1",
        **{
            "pass": {
                "storeCard": {
                    "secondaryFields": [{"key": "member", "label": "MEMBER", "value": "Grace"}]
                }
            }
        },
    )
    assert created["passTypeIdentifier"] == "pass.com.example.test"
    assert created["serialNumber"] == "card-1"
    assert "authenticationToken" not in str(created)
    files = unzip(admin.get(pass_path(created) + "/pkpass").data)
    assert {
        "pass.json",
        "manifest.json",
        "signature",
        "icon.png",
        "logo@2x.png",
        "strip.png",
        "fr.lproj/pass.strings",
    } <= set(files)
    inside = pass_json(admin.get(pass_path(created) + "/pkpass").data)
    assert inside["teamIdentifier"] == "ABCDE12345"
    assert inside["serialNumber"] == "card-1"
    assert len(inside["authenticationToken"]) >= 16
    assert inside["organizationName"] == "Bean There Coffee"  # from the template
    assert inside["storeCard"]["secondaryFields"][0]["value"] == "Grace"  # from the data
    assert openssl_verify(files, chain_files["root"], tmp_path).returncode == 0


def test_a_tampered_file_fails_openssl_verification(
    admin: Admin, chain_files: dict[str, Path], tmp_path: Path
) -> None:
    files = unzip(admin.get(pass_path(admin.create_pass()) + "/pkpass").data)
    files["manifest.json"] = files["manifest.json"].replace(b"{", b'{"extra.png":"00",', 1)
    assert openssl_verify(files, chain_files["root"], tmp_path).returncode != 0


def test_serial_number_is_generated_when_absent(admin: Admin) -> None:
    first, second = admin.create_pass(), admin.create_pass()
    assert first["serialNumber"] != second["serialNumber"]
    assert len(first["serialNumber"]) >= 16


def test_pass_without_template_is_exactly_the_data_and_files(admin: Admin) -> None:
    data = {"formatVersion": 1, "description": "Bare", "organizationName": "Org", "generic": {}}
    response = admin.post(
        "/api/passes",
        json={"pass": data, "files": {"icon.png": base64.b64encode(PNG).decode()}},
    )
    assert response.status_code == 201, response.get_json()
    pkpass = admin.get(pass_path(response.get_json()) + "/pkpass").data
    files = unzip(pkpass)
    assert set(files) == {"pass.json", "icon.png", "manifest.json", "signature"}
    inside = pass_json(pkpass)
    injected = {
        "passTypeIdentifier",
        "serialNumber",
        "teamIdentifier",
        "webServiceURL",
        "authenticationToken",
    }
    assert set(inside) == set(data) | injected


def test_show_reports_data_update_and_device_count(client: FlaskClient, admin: Admin) -> None:
    created = admin.create_pass(**{"pass": {"logoText": "Shown"}})
    client.post(registration_url(created), headers=auth(created), json={"pushToken": PUSH_TOKEN})
    shown = admin.get(pass_path(created)).get_json()
    assert shown["pass"] == {"logoText": "Shown"}
    assert shown["devices"] == 1
    assert shown["lastModified"].endswith("GMT")
    registrations = admin.get(pass_path(created) + "/registrations").get_json()["registrations"]
    assert registrations[0]["pushTokenPrefix"] == PUSH_TOKEN[:8]
    assert PUSH_TOKEN not in str(registrations)


def test_patch_merges_deletes_with_null_and_queues_a_push_per_device(
    app: Flask, client: FlaskClient, admin: Admin
) -> None:
    created = admin.create_pass(**{"pass": {"logoText": "A", "userInfo": {"a": 1, "b": 2}}})
    client.post(registration_url(created), headers=auth(created), json={"pushToken": PUSH_TOKEN})
    for value in ("B", "C", "D"):
        response = admin.patch(
            pass_path(created), json={"pass": {"logoText": value, "userInfo": {"b": None}}}
        )
        assert response.status_code == 200
    shown = response.get_json()
    assert shown["pass"] == {"logoText": "D", "userInfo": {"a": 1}}
    with app.app_context():
        pending = db.session.query(PendingPush).all()
        assert len(pending) == 1  # a burst of updates: one push for the device
        assert pending[0].version == 3


def test_list_passes_pages_newest_first(admin: Admin) -> None:
    for serial in ("l1", "l2", "l3"):
        admin.create_pass(serialNumber=serial)
    first = admin.get("/api/passes", query_string={"limit": 2}).get_json()["passes"]
    assert [p["serialNumber"] for p in first] == ["l3", "l2"]
    rest = admin.get(
        "/api/passes", query_string={"limit": 2, "after": first[-1]["updateTag"]}
    ).get_json()["passes"]
    assert [p["serialNumber"] for p in rest] == ["l1"]


def test_list_passes_pages_through_passes_sharing_an_update_tag(
    app: Flask, client: FlaskClient, admin: Admin
) -> None:
    """`push --all` gives every touched pass one tag: paging must still list each once."""
    serials = [f"same-{i}" for i in range(5)]
    for serial in serials:
        created = admin.create_pass(serialNumber=serial)
        assert register(client, created).status_code in (200, 201)
    with app.app_context():
        assert store.touch_all() == len(serials)  # what `flask passes push --all` does
        db.session.commit()
    pages: list[list[str]] = []
    query = {"limit": 2}
    while True:
        page = admin.get("/api/passes", query_string=query).get_json()
        pages.append([p["serialNumber"] for p in page["passes"]])
        if page["next"] is None:
            break
        query["after"] = page["next"]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert sorted(sum(pages, [])) == serials


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"template": "no-such-template"}, "$.template"),
        ({"template": "../etc"}, "$.template"),
        ({"template": 5}, "$.template"),
        ({"pass": []}, "$.pass"),
        ({"pass": {"serialNumber": "x"}}, "$.pass.serialNumber"),
        ({"serialNumber": "has space"}, "$.serialNumber"),
        ({"serialNumber": "s" * 200}, "$.serialNumber"),
        ({"files": {"icon.png": "!!!"}}, "$.files.icon.png"),
        ({"files": {"../x.png": "AAAA"}}, "$.files.../x.png"),
        ({"files": {"pass.json": "AAAA"}}, "$.files.pass.json"),
        ({"files": ["x"]}, "$.files"),
        ({"colour": "red"}, "$"),
    ],
)
def test_bad_create_requests_are_400_and_write_nothing(
    app: Flask, admin: Admin, body: dict[str, object], path: str
) -> None:
    response = admin.post("/api/passes", json={"template": "storecard", **body})
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["path"] == path
    with app.app_context():
        assert db.session.query(Pass).count() == 0


@pytest.mark.parametrize("body", [b"{", b"[1]", b"null", b'{"a": NaN}', b"[" * 100_000])
def test_malformed_json_is_400(admin: Admin, body: bytes) -> None:
    response = admin.post("/api/passes", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_duplicate_serial_number_is_409(admin: Admin) -> None:
    admin.create_pass(serialNumber="dup")
    response = admin.post("/api/passes", json={"template": "storecard", "serialNumber": "dup"})
    assert response.status_code == 409


def test_oversize_admin_body_is_413(make_app: Callable[..., Flask]) -> None:
    app = make_app(MAX_CONTENT_LENGTH=1000)
    response = app.test_client().post(
        "/api/passes",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        json={"pass": {"logoText": "x" * 2000}},
    )
    assert response.status_code == 413


def test_unknown_pass_is_404(admin: Admin) -> None:
    assert admin.get("/api/passes/pass.com.example.test/nope").status_code == 404
    assert (
        admin.patch("/api/passes/pass.com.example.test/nope", json={"pass": {}}).status_code == 404
    )
    assert admin.get("/api/passes/pass.com.example.test/nope/pkpass").status_code == 404


def test_patch_needs_pass_or_files(admin: Admin) -> None:
    created = admin.create_pass()
    assert admin.patch(pass_path(created), json={}).status_code == 400
    assert admin.patch(pass_path(created), json={"pass": "x"}).status_code == 400


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": ADMIN_TOKEN},
    ],
)
def test_admin_api_refuses_wrong_tokens(client: FlaskClient, headers: dict[str, str]) -> None:
    response = client.get("/api/passes", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_admin_api_is_disabled_without_admin_token(make_app: Callable[..., Flask]) -> None:
    app = make_app(ADMIN_TOKEN=None)
    response = app.test_client().get("/api/passes", headers={"Authorization": "Bearer "})
    assert response.status_code == 403
    assert "ADMIN_TOKEN" in response.get_json()["message"]


def test_bad_paging_arguments_are_400(admin: Admin) -> None:
    assert admin.get("/api/passes", query_string={"limit": "0"}).status_code == 400
    assert admin.get("/api/passes", query_string={"limit": "abc"}).status_code == 400
    for after in ("x", "1.", ".1", "1.2.3", "1.x", "1" * 19):
        assert admin.get("/api/passes", query_string={"after": after}).status_code == 400
    assert admin.get("/api/logs", query_string={"limit": "9999"}).status_code == 400


def test_a_pass_wallet_would_refuse_is_422_with_every_problem_and_not_stored(
    app: Flask, admin: Admin
) -> None:
    response = admin.post(
        "/api/passes",
        json={
            "template": "storecard",
            "pass": {
                "backgroundColor": "green",
                "storeCard": {
                    "primaryFields": [
                        {"key": "balance", "value": 1, "changeMessage": "no placeholder"}
                    ]
                },
                "barcodes": [{"format": "PKBarcodeFormatQR"}],
            },
        },
    )
    assert response.status_code == 422
    body = response.get_json()
    paths = {problem["path"] for problem in body["errors"]}
    assert "$.backgroundColor" in paths
    assert "$.storeCard.primaryFields[0].changeMessage" in paths
    assert any(path.startswith("$.barcodes[0]") for path in paths)
    assert all(problem["fix"] for problem in body["errors"])
    with app.app_context():
        assert db.session.query(Pass).count() == 0


def test_a_patch_that_breaks_the_pass_is_422_and_leaves_it_unchanged(admin: Admin) -> None:
    created = admin.create_pass(**{"pass": {"logoText": "Before"}})
    response = admin.patch(
        pass_path(created), json={"pass": {"logoText": "After", "formatVersion": 2}}
    )
    assert response.status_code == 422
    shown = admin.get(pass_path(created)).get_json()
    assert shown["pass"] == {"logoText": "Before"}
    assert shown["updateTag"] == created["updateTag"]


def test_warnings_come_back_with_the_change(admin: Admin) -> None:
    created = admin.create_pass(**{"pass": {"foregroundColor": "#ffffff"}})
    assert any(w["path"] == "$.foregroundColor" for w in created["warnings"])


def test_missing_icon_is_refused(admin: Admin) -> None:
    data = {"formatVersion": 1, "description": "Bare", "organizationName": "Org", "generic": {}}
    response = admin.post("/api/passes", json={"pass": data})
    assert response.status_code == 422
    assert any("icon" in problem["path"] for problem in response.get_json()["errors"])


def test_localized_strings_and_images_through_the_admin_api(admin: Admin) -> None:
    strings = b'"BALANCE" = "Guthaben";\n"MEMBER" = "Mitglied \\"Gold\\"";\n'
    created = admin.create_pass(
        files={
            "de.lproj/pass.strings": base64.b64encode(strings).decode(),
            "de.lproj/logo.png": base64.b64encode(PNG).decode(),
        }
    )
    files = unzip(admin.get(pass_path(created) + "/pkpass").data)
    assert files["de.lproj/pass.strings"] == strings
    assert "de.lproj/logo.png" in files and "fr.lproj/pass.strings" in files
    broken = admin.patch(
        pass_path(created),
        json={
            "files": {"de.lproj/pass.strings": base64.b64encode(b'"A" = "unterminated').decode()}
        },
    )
    assert broken.status_code == 422
    assert any("de.lproj/pass.strings" in p["path"] for p in broken.get_json()["errors"])
