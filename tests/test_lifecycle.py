"""Bundles, voiding and expiring passes, and the verifier command on what we build."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from cryptography import x509
from flask import Flask
from flask.testing import FlaskCliRunner

from models import PendingPush, db
from passes.verify import verify_pkpass
from tests.conftest import Admin
from tests.pkpass_tools import pass_json
from tests.test_admin import pass_path
from tests.test_webservice import PUSH_TOKEN, auth, registration_url


def test_every_built_pass_passes_the_verifier(admin: Admin, chain_files: dict[str, Path]) -> None:
    root = x509.load_pem_x509_certificate(chain_files["root"].read_bytes())
    created = admin.create_pass()
    report = verify_pkpass(admin.get(pass_path(created) + "/pkpass").data, trusted_roots=[root])
    failed = [c for c in report.checks if not c.ok]
    assert report.ok, report.render()
    assert not failed


def test_bundle_holds_each_pass_signed(admin: Admin, chain_files: dict[str, Path]) -> None:
    root = x509.load_pem_x509_certificate(chain_files["root"].read_bytes())
    one, two = admin.create_pass(serialNumber="b1"), admin.create_pass(serialNumber="b2")
    response = admin.post(
        "/api/bundles",
        json={
            "passes": [
                {"passTypeIdentifier": one["passTypeIdentifier"], "serialNumber": "b1"},
                {"passTypeIdentifier": two["passTypeIdentifier"], "serialNumber": "b2"},
            ]
        },
    )
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.apple.pkpasses"
    with zipfile.ZipFile(io.BytesIO(response.data)) as bundle:
        names = bundle.namelist()
        assert [name.endswith(".pkpass") for name in names] == [True, True]
        serials = [pass_json(bundle.read(n))["serialNumber"] for n in names]
        assert serials == ["b1", "b2"]
        assert all(verify_pkpass(bundle.read(n), trusted_roots=[root]).ok for n in names)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"passes": []},
        {"passes": [{"serialNumber": "x"}]},
        {"passes": "b1"},
        {"passes": [{"passTypeIdentifier": "p", "serialNumber": "s"}] * 2},
    ],
)
def test_bad_bundle_requests_are_400(admin: Admin, body: dict[str, object]) -> None:
    assert admin.post("/api/bundles", json=body).status_code == 400


def test_bundle_with_an_unknown_pass_is_404(admin: Admin) -> None:
    body = {"passes": [{"passTypeIdentifier": "pass.com.example.test", "serialNumber": "nope"}]}
    assert admin.post("/api/bundles", json=body).status_code == 404


def test_voiding_is_an_update_that_reaches_devices(app: Flask, admin: Admin) -> None:
    created = admin.create_pass()
    admin.client.post(
        registration_url(created), headers=auth(created), json={"pushToken": PUSH_TOKEN}
    )
    response = admin.post(pass_path(created) + "/void")
    assert response.status_code == 200
    assert response.get_json()["pass"]["voided"] is True
    assert int(response.get_json()["updateTag"]) > int(created["updateTag"])
    assert pass_json(admin.get(pass_path(created) + "/pkpass").data)["voided"] is True
    with app.app_context():
        assert db.session.query(PendingPush).count() == 1


def test_expiring_sets_the_expiration_date(admin: Admin) -> None:
    created = admin.create_pass()
    response = admin.post(
        pass_path(created) + "/expire", json={"expirationDate": "2026-12-31T23:59:00+01:00"}
    )
    assert response.status_code == 200
    assert (
        pass_json(admin.get(pass_path(created) + "/pkpass").data)["expirationDate"]
        == "2026-12-31T23:59:00+01:00"
    )
    now = admin.post(pass_path(created) + "/expire")
    assert now.status_code == 200
    assert now.get_json()["pass"]["expirationDate"] != "2026-12-31T23:59:00+01:00"
    for bad in ("tomorrow", "2026-12-31", "2026-12-31T10:00:00", 5):
        assert (
            admin.post(pass_path(created) + "/expire", json={"expirationDate": bad}).status_code
            == 400
        )


@pytest.mark.parametrize(
    "when",
    [
        "20261231T235900Z",  # ISO 8601 basic format: not a W3C date, which Apple asks for
        "2026-12-31T23:59:00+0100",  # a zone without its colon
        "2026-12-31T24:00:00Z",
    ],
)
def test_expire_refuses_what_validation_refuses_with_a_400_at_its_path(
    admin: Admin, when: str
) -> None:
    created = admin.create_pass()
    response = admin.post(pass_path(created) + "/expire", json={"expirationDate": when})
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["path"] == "$.expirationDate"
    assert "expirationDate" not in admin.get(pass_path(created)).get_json()["pass"]


def test_cli_bundle_and_verify(
    runner: FlaskCliRunner, admin: Admin, tmp_path: Path, chain_files: dict[str, Path]
) -> None:
    admin.create_pass(serialNumber="v1")
    admin.create_pass(serialNumber="v2")
    bundle = tmp_path / "two.pkpasses"
    assert runner.invoke(args=["passes", "bundle", "v1", "v2", "-o", str(bundle)]).exit_code == 0
    assert len(zipfile.ZipFile(bundle).namelist()) == 2

    good = tmp_path / "v1.pkpass"
    runner.invoke(args=["passes", "export", "v1", "-o", str(good)])
    checked = runner.invoke(
        args=["passes", "verify", str(good), "--root", str(chain_files["root"])]
    )
    assert checked.exit_code == 0, checked.output
    assert "FAIL" not in checked.output
    not_a_root = tmp_path / "root.pem"
    not_a_root.write_bytes(b"not a certificate")
    refused = runner.invoke(args=["passes", "verify", str(good), "--root", str(not_a_root)])
    assert refused.exit_code == 2
    assert "is not a certificate" in refused.output

    # One file changed after signing.
    files = {n: zipfile.ZipFile(good).read(n) for n in zipfile.ZipFile(good).namelist()}
    files["pass.json"] = files["pass.json"].replace(b"Bean There", b"Bean Gone")
    tampered = tmp_path / "tampered.pkpass"
    with zipfile.ZipFile(tampered, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    failed = runner.invoke(
        args=["passes", "verify", str(tampered), "--root", str(chain_files["root"])]
    )
    assert failed.exit_code == 1
    assert "FAIL" in failed.output
