"""Several pass types side by side, and a certificate renewed beside the one it replaces.

Each type has its own Pass Type ID certificate (PASS_CERTIFICATE, PASS_CERTIFICATE_2, ...):
its passes are signed with it, pushed with its type as the APNs topic over a connection that
presents it (the fake APNs refuses any other topic, as Apple does), and served by the device
web service.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7
from flask import Flask
from flask.testing import FlaskClient

from models import Pass, PendingPush, Registration, db
from passes import context, pushing
from passes.apns import ApnsSettings, Outcome
from tests.apns_server import FakeApns, send_batch
from tests.apple_chain import FakeAppleChain, Issued, issue_pass_certificate
from tests.conftest import ADMIN_TOKEN, Admin
from tests.pkpass_tools import openssl_verify, unzip
from tests.pushes import LEASE
from tests.test_sign import package, sign, zipped
from tests.test_webservice import auth, pass_url, register, serials_url

STORE = "pass.com.example.test"  # the chain's: PASS_CERTIFICATE
COUPON = "pass.com.example.coupon"  # PASS_CERTIFICATE_2
DEVICE = "b1b2c3d4e5f60718293a4b5c6d7e8f90"


def write_pem(issued: Issued, path: Path) -> str:
    path.write_bytes(issued.key_pem() + issued.cert_pem())
    return str(path)


@pytest.fixture(scope="session")
def coupon_cert(chain: FakeAppleChain) -> Issued:
    return issue_pass_certificate(chain.wwdr, COUPON)


@pytest.fixture
def two_types(make_app: Callable[..., Flask], apns: FakeApns, coupon_cert: Issued, tmp_path: Path):
    return make_app(
        PASS_CERTIFICATE_2=write_pem(coupon_cert, tmp_path / "coupon.pem"),
        APNS_URL=apns.url,
        APNS_CA_FILE=apns.ca_file,
    )


def signer(pkpass: bytes) -> x509.Certificate:
    """The certificate that signed a pass (the one in its signature with a pass type UID)."""
    signature = unzip(pkpass)["signature"]
    certificates = pkcs7.load_der_pkcs7_certificates(signature)
    return next(c for c in certificates if c.subject.get_attributes_for_oid(x509.NameOID.USER_ID))


def serial_hex(certificate: x509.Certificate) -> str:
    """As Python's ssl module reports a peer's serial number: whole bytes in hex."""
    digits = f"{certificate.serial_number:X}"
    return digits.rjust(len(digits) + len(digits) % 2, "0")


def create(admin: Admin, serial: str, pass_type: str | None) -> Any:
    body: dict[str, Any] = {"template": "storecard", "serialNumber": serial}
    if pass_type is not None:
        body["passTypeIdentifier"] = pass_type
    return admin.post("/api/passes", json=body)


def test_two_pass_types_are_created_signed_pushed_and_served_side_by_side(
    two_types: Flask,
    apns: FakeApns,
    chain: FakeAppleChain,
    coupon_cert: Issued,
    chain_files: dict[str, Path],
    tmp_path: Path,
) -> None:
    client = two_types.test_client()
    admin = Admin(client)
    store = create(admin, "card-1", STORE).get_json()
    coupon = create(admin, "coupon-1", COUPON).get_json()
    assert (store["passTypeIdentifier"], coupon["passTypeIdentifier"]) == (STORE, COUPON)

    # Signed: each with its own type's certificate, both verify with openssl.
    certificates = {STORE: chain.pass_cert.cert, COUPON: coupon_cert.cert}
    for created in (store, coupon):
        pass_type, serial = created["passTypeIdentifier"], created["serialNumber"]
        pkpass = admin.get(f"/api/passes/{pass_type}/{serial}/pkpass").data
        folder = tmp_path / serial
        assert openssl_verify(unzip(pkpass), chain_files["root"], folder).returncode == 0
        assert signer(pkpass) == certificates[pass_type]

    # The device web service: one phone registers both, lists and downloads each type.
    for created in (store, coupon):
        assert register(client, created, DEVICE).status_code == 201
        listed = client.get(serials_url(created, DEVICE)).get_json()
        assert listed["serialNumbers"] == [created["serialNumber"]]
        download = client.get(pass_url(created), headers=auth(created))
        assert download.status_code == 200
        assert signer(download.data) == certificates[created["passTypeIdentifier"]]

    # Both change: the phone is pushed once on each topic, over that type's certificate.
    for created in (store, coupon):
        url = f"/api/passes/{created['passTypeIdentifier']}/{created['serialNumber']}"
        assert admin.patch(url, json={"pass": {"logoText": "new"}}).status_code == 200
    with two_types.app_context():
        pending = db.session.execute(sa.select(PendingPush.pass_type_identifier)).scalars()
        assert sorted(pending) == [COUPON, STORE]
        assert pushing.drain_now().sent == 2
    pushes = {r.headers["apns-topic"]: r for r in apns.wait_for(2)}
    assert set(pushes) == {STORE, COUPON}
    for topic, request in pushes.items():
        assert request.answered is not None and request.answered.status == 200
        assert request.client_uid == topic
        assert request.client_serial == serial_hex(certificates[topic])
    assert pushes[STORE].connection != pushes[COUPON].connection

    # Only the coupon changes: only the coupon topic is pushed.
    assert admin.patch(f"/api/passes/{COUPON}/coupon-1", json={"pass": {"logoText": "again"}})
    with two_types.app_context():
        assert pushing.drain_now().sent == 1
    assert [r.headers["apns-topic"] for r in apns.wait_for(3)[2:]] == [COUPON]


def test_pending_pushes_of_a_device_are_kept_per_type_and_recorded_per_type(
    two_types: Flask, apns: FakeApns
) -> None:
    client = two_types.test_client()
    admin = Admin(client)
    store = create(admin, "card-2", STORE).get_json()
    coupon = create(admin, "coupon-2", COUPON).get_json()
    for created in (store, coupon):
        register(client, created, DEVICE)
    assert admin.patch(f"/api/passes/{STORE}/card-2", json={"pass": {"logoText": "x"}})
    with two_types.app_context():
        # The store card's push is claimed and in flight when the coupon changes.
        [claimed] = pushing._claim(db.engine, 10, LEASE, [STORE, COUPON])
        assert claimed.topic == STORE
        assert admin.patch(f"/api/passes/{COUPON}/coupon-2", json={"pass": {"logoText": "y"}})
        settings = pushing.apns_settings(context.credentials(STORE))
        pushing._finish(db.engine, claimed, send_batch(claimed.devices_by_token, settings))
        # Finishing the store card's push left the coupon's waiting, and recorded the push
        # on the store card's registration only.
        left = db.session.execute(sa.select(PendingPush.pass_type_identifier)).scalars().all()
        assert left == [COUPON]
        outcomes = db.session.execute(
            sa.select(Pass.pass_type_identifier, Registration.push_outcome).join(
                Registration, Registration.pass_id == Pass.id
            )
        ).all()
        assert dict(outcomes) == {STORE: "sent", COUPON: None}
    pending = {
        p["passTypeIdentifier"]: admin.get(
            f"/api/passes/{p['passTypeIdentifier']}/{p['serialNumber']}/registrations"
        ).get_json()["registrations"][0]["pushPending"]
        for p in (store, coupon)
    }
    assert pending == {STORE: False, COUPON: True}
    with two_types.app_context():
        assert pushing.drain_now().sent == 1
    assert [r.headers["apns-topic"] for r in apns.requests] == [STORE, COUPON]


def test_an_unsigned_package_is_signed_with_the_certificate_of_its_type(
    two_types: Flask, coupon_cert: Issued
) -> None:
    admin = Admin(two_types.test_client())
    coupon = sign(admin, zipped(package(passTypeIdentifier=COUPON)), store="true")
    assert coupon.status_code == 200, coupon.get_json()
    assert signer(coupon.data) == coupon_cert.cert
    assert admin.get(f"/api/passes/{COUPON}/designed-1").status_code == 200  # kept as a coupon
    other = sign(admin, zipped(package(passTypeIdentifier="pass.com.example.other")))
    assert other.status_code == 422
    [problem] = other.get_json()["errors"]
    assert problem["path"] == "$.passTypeIdentifier"
    assert COUPON in problem["message"] and STORE in problem["message"]


def test_apns_refuses_a_topic_that_is_not_the_certificates(
    apns_settings: ApnsSettings, apns_server: FakeApns
) -> None:
    # What makes the pushes above meaningful: the stand-in, like Apple, checks the topic.
    [result] = send_batch(["ab" * 32], replace(apns_settings, topic=COUPON))
    assert (result.outcome, result.status, result.reason) == (
        Outcome.FAILED,
        400,
        "TopicDisallowed",
    )


def test_the_type_must_be_given_when_there_are_several(two_types: Flask) -> None:
    admin = Admin(two_types.test_client())
    missing = create(admin, "which", None)
    assert missing.status_code == 400
    body = missing.get_json()
    assert body["path"] == "$.passTypeIdentifier"
    assert COUPON in body["message"] and STORE in body["message"]
    unknown = create(admin, "which", "pass.com.example.nothing")
    assert unknown.status_code == 400
    assert "'pass.com.example.nothing' is not a pass type" in unknown.get_json()["message"]
    with two_types.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(PendingPush)) == 0

    runner = two_types.test_cli_runner()
    result = runner.invoke(args=["passes", "create", "--template", "storecard"])
    assert result.exit_code == 2
    assert "--type" in result.output and COUPON in result.output
    result = runner.invoke(
        args=["passes", "create", "--template", "storecard", "--type", COUPON, "--serial", "c"]
    )
    assert result.exit_code == 0, result.output
    assert f"created {COUPON} c" in result.output


def test_one_type_may_be_left_out_and_an_unknown_one_is_refused(admin: Admin) -> None:
    assert create(admin, "one", None).get_json()["passTypeIdentifier"] == STORE
    assert create(admin, "two", STORE).status_code == 201
    refused = create(admin, "three", COUPON)
    assert refused.status_code == 400
    assert refused.get_json()["path"] == "$.passTypeIdentifier"


def test_healthz_lists_every_certificate(two_types: Flask, coupon_cert: Issued) -> None:
    response = two_types.test_client().get("/healthz")
    assert response.status_code == 200
    listed = response.get_json()["checks"]["certificates"]
    assert [(c["setting"], c["passTypeIdentifier"], c["inUse"]) for c in listed] == [
        ("PASS_CERTIFICATE", STORE, True),
        ("PASS_CERTIFICATE_2", COUPON, True),
    ]
    assert {c["teamIdentifier"] for c in listed} == {"ABCDE12345"}
    days = (coupon_cert.cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).days
    assert listed[1]["daysToExpiry"] == days


# --- renewal ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def renewed_cert(chain: FakeAppleChain) -> Issued:
    """The store card's certificate renewed: the same type, expiring a year later."""
    later = chain.pass_cert.cert.not_valid_after_utc + dt.timedelta(days=365)
    return issue_pass_certificate(chain.wwdr, STORE, not_after=later)


@pytest.mark.parametrize("renewed_as", ["PASS_CERTIFICATE_2", "PASS_CERTIFICATE"])
def test_of_two_certificates_for_one_type_the_one_expiring_last_signs_and_pushes(
    make_app: Callable[..., Flask],
    apns: FakeApns,
    chain: FakeAppleChain,
    chain_files: dict[str, Path],
    renewed_cert: Issued,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    renewed_as: str,
) -> None:
    caplog.set_level(logging.INFO, logger="passes")
    renewed = write_pem(renewed_cert, tmp_path / "renewed.pem")
    old = str(chain_files["pass_pem"])
    files = {"PASS_CERTIFICATE": old, "PASS_CERTIFICATE_2": renewed}
    if renewed_as == "PASS_CERTIFICATE":
        files = {"PASS_CERTIFICATE": renewed, "PASS_CERTIFICATE_2": old}
    app = make_app(
        **files, PASS_CERTIFICATE_PASSWORD=None, APNS_URL=apns.url, APNS_CA_FILE=apns.ca_file
    )
    old_as = "PASS_CERTIFICATE_2" if renewed_as == "PASS_CERTIFICATE" else "PASS_CERTIFICATE"
    expires = renewed_cert.cert.not_valid_after_utc.date().isoformat()
    assert f"signing and pushing as {STORE} (team ABCDE12345) with {renewed_as}, " in caplog.text
    assert f"valid until {expires}" in caplog.text
    assert f"not using {old_as} for {STORE}" in caplog.text

    client = app.test_client()
    admin = Admin(client)
    created = create(admin, "renewed-1", None).get_json()  # one type: it may be left out
    pkpass = admin.get(f"/api/passes/{STORE}/renewed-1/pkpass").data
    assert signer(pkpass) == renewed_cert.cert
    assert openssl_verify(unzip(pkpass), chain_files["root"], tmp_path / "v").returncode == 0
    register(client, created, DEVICE)
    admin.patch(f"/api/passes/{STORE}/renewed-1", json={"pass": {"logoText": "x"}})
    with app.app_context():
        assert pushing.drain_now().sent == 1
    [push] = apns.requests
    assert push.client_serial == serial_hex(renewed_cert.cert)

    listed = client.get("/healthz").get_json()["checks"]["certificates"]
    assert {c["setting"]: c["inUse"] for c in listed} == {renewed_as: True, old_as: False}


def test_an_expired_certificate_beside_its_renewal_does_not_stop_start_up(
    make_app: Callable[..., Flask], chain: FakeAppleChain, renewed_cert: Issued, tmp_path: Path
) -> None:
    expired = issue_pass_certificate(
        chain.wwdr,
        STORE,
        not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        not_after=dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
    )
    app = make_app(
        PASS_CERTIFICATE=write_pem(expired, tmp_path / "expired.pem"),
        PASS_CERTIFICATE_PASSWORD=None,
        PASS_CERTIFICATE_2=write_pem(renewed_cert, tmp_path / "renewed.pem"),
    )
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    listed = response.get_json()["checks"]["certificates"]
    assert [(c["inUse"], c["daysToExpiry"] < 0) for c in listed] == [(False, True), (True, False)]


# --- bad configuration -------------------------------------------------------------------------


def start_up_error(make_app: Callable[..., Flask], capsys: Any, **settings: Any) -> str:
    with pytest.raises(SystemExit) as stopped:
        make_app(**settings)
    assert stopped.value.code == 3
    message = capsys.readouterr().err
    assert "Traceback" not in message
    assert message.strip().startswith("Cannot start:")
    return message


def test_a_certificate_name_outside_the_rule_stops_start_up_naming_it(
    make_app: Callable[..., Flask],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    chain_files: dict[str, Path],
) -> None:
    monkeypatch.setenv("PASS_CERTIFICATE_1", str(chain_files["pass_pem"]))
    message = start_up_error(make_app, capsys)
    assert "PASS_CERTIFICATE_1 is not a setting this server reads" in message
    assert "PASS_CERTIFICATE_2" in message


def test_a_numbered_certificate_is_read_from_the_environment_with_its_variants(
    make_app: Callable[..., Flask],
    monkeypatch: pytest.MonkeyPatch,
    coupon_cert: Issued,
    tmp_path: Path,
) -> None:
    import base64

    encrypted = coupon_cert.key_pem(b"coupon-pass") + coupon_cert.cert_pem()
    monkeypatch.setenv("PASS_CERTIFICATE_3_BASE64", base64.b64encode(encrypted).decode())
    monkeypatch.setenv("PASS_CERTIFICATE_3_PASSWORD", "coupon-pass")
    app = make_app()
    with app.app_context():
        loaded = context.credentials(COUPON)
    assert loaded.variable == "PASS_CERTIFICATE_3"
    assert loaded.certificate == coupon_cert.cert


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"PASS_CERTIFICATE_2": "/nowhere/coupon.p12"}, "PASS_CERTIFICATE_2 points to"),
        ({"PASS_CERTIFICATE_2_BASE64": "@@"}, "PASS_CERTIFICATE_2_BASE64 is not valid base64"),
        (
            "encrypted",
            "The private key in PASS_CERTIFICATE_2 is encrypted: set PASS_CERTIFICATE_2_",
        ),
        ("wrong password", "PASS_CERTIFICATE_2_PASSWORD is wrong"),
        ("not a pass certificate", "PASS_CERTIFICATE_2 is not a Pass Type ID certificate"),
    ],
)
def test_a_broken_second_certificate_stops_start_up_naming_its_variable(
    make_app: Callable[..., Flask],
    capsys: pytest.CaptureFixture[str],
    coupon_cert: Issued,
    chain: FakeAppleChain,
    tmp_path: Path,
    settings: Any,
    expected: str,
) -> None:
    pem = tmp_path / "coupon.pem"
    if settings == "encrypted":
        pem.write_bytes(coupon_cert.key_pem(b"pw") + coupon_cert.cert_pem())
        settings = {"PASS_CERTIFICATE_2": str(pem)}
    elif settings == "wrong password":
        pem.write_bytes(coupon_cert.key_pem(b"pw") + coupon_cert.cert_pem())
        settings = {"PASS_CERTIFICATE_2": str(pem), "PASS_CERTIFICATE_2_PASSWORD": "nope"}
    elif settings == "not a pass certificate":
        from tests.apple_chain import issue, subject_name

        plain = issue(subject_name("web server"), chain.wwdr, ca=False)
        pem.write_bytes(plain.key_pem() + plain.cert_pem())
        settings = {"PASS_CERTIFICATE_2": str(pem)}
    message = start_up_error(make_app, capsys, **settings)
    assert expected in message
    assert "nope" not in message  # the password is never echoed


def test_passes_of_a_type_whose_certificate_is_gone_answer_503_not_500(
    two_types: Flask, make_app: Callable[..., Flask]
) -> None:
    coupon = create(Admin(two_types.test_client()), "orphan", COUPON).get_json()
    one_type = make_app()  # the coupon certificate was removed from the configuration
    client: FlaskClient = one_type.test_client()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = client.get(f"/api/passes/{COUPON}/orphan/pkpass", headers=headers)
    assert response.status_code == 503
    assert "PASS_CERTIFICATE_2" in response.get_json()["message"]
    assert client.get(pass_url(coupon), headers=auth(coupon)).status_code == 503


# --- dashboard ---------------------------------------------------------------------------------


def test_the_dashboard_lists_the_certificates_and_creates_a_pass_of_either_type(
    two_types: Flask,
) -> None:
    from tests.test_dashboard import csrf_of, sign_in

    browser = two_types.test_client()
    assert browser.get("/admin/certificates").status_code == 302  # signed in only
    sign_in(browser, ADMIN_TOKEN)
    page = browser.get("/admin/certificates").get_data(as_text=True)
    assert "PASS_CERTIFICATE_2" in page and COUPON in page and "ABCDE12345" in page
    assert page.count("in use") == 2

    form = browser.get("/admin/passes/new?template=storecard").get_data(as_text=True)
    assert f'<option value="{COUPON}">' in form
    fields = {"csrf_token": csrf_of(form), "template": "storecard", "serialNumber": "dash-c"}
    refused = browser.post("/admin/passes/new", data=fields)
    assert refused.status_code == 400
    assert "several pass types" in refused.get_data(as_text=True)
    created = browser.post("/admin/passes/new", data={**fields, "passTypeIdentifier": COUPON})
    assert created.status_code == 302
    assert created.headers["Location"].endswith(f"/admin/passes/{COUPON}/dash-c")
