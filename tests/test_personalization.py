"""Rewards enrollment: Wallet's sign-up form, the signed token, the personalized pass."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask.testing import FlaskClient

from tests.conftest import Admin
from tests.pkpass_tools import openssl_verify_detached, unzip
from tests.test_admin import PNG, pass_path
from tests.test_webservice import auth, pass_url

PERSONALIZATION = {
    "description": "Join Bean There rewards",
    "requiredPersonalizationFields": [
        "PKPassPersonalizationFieldName",
        "PKPassPersonalizationFieldEmailAddress",
    ],
}
INFO = {
    "fullName": "Ada Lovelace",
    "givenName": "Ada",
    "familyName": "Lovelace",
    "emailAddress": "ada@example.com",
}


def enrollable(admin: Admin) -> dict[str, Any]:
    files = {
        "personalization.json": base64.b64encode(json.dumps(PERSONALIZATION).encode()).decode(),
        "personalizationLogo.png": base64.b64encode(PNG).decode(),
    }
    # Apple offers rewards enrollment only on NFC-enabled passes.
    public_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    nfc = {"message": "member-0001", "encryptionPublicKey": base64.b64encode(der).decode()}
    return admin.create_pass(files=files, **{"pass": {"nfc": nfc}})


def personalize_url(created: dict[str, Any]) -> str:
    return pass_url(created) + "/personalize"


def test_enrollment_signs_the_token_and_serves_the_personalized_pass(
    client: FlaskClient, admin: Admin, chain_files: dict[str, Path], tmp_path: Path
) -> None:
    created = enrollable(admin)
    before = client.get(pass_url(created), headers=auth(created))
    assert "personalization.json" in unzip(before.data)

    response = client.post(
        personalize_url(created),
        json={"personalizationToken": "token-from-wallet", "requiredPersonalizationInfo": INFO},
    )
    assert response.status_code == 200
    assert response.mimetype == "application/octet-stream"
    verified = openssl_verify_detached(
        b"token-from-wallet", response.data, chain_files["root"], tmp_path
    )
    assert verified.returncode == 0, verified.stderr

    after = client.get(
        pass_url(created),
        headers={**auth(created), "If-Modified-Since": before.headers["Last-Modified"]},
    )
    assert after.status_code == 200
    assert "personalization.json" not in unzip(after.data)
    assert "personalizationLogo.png" not in unzip(after.data)

    enrolled = admin.get(pass_path(created) + "/personalization").get_json()
    assert enrolled["requiredPersonalizationInfo"] == INFO
    assert admin.get(pass_path(created)).get_json()["personalized"] is True

    again = client.post(
        personalize_url(created),
        json={"personalizationToken": "t2", "requiredPersonalizationInfo": INFO},
    )
    assert again.status_code == 409


def test_enrollment_refuses_bad_bodies_passes_without_it_and_wrong_tokens(
    client: FlaskClient, admin: Admin
) -> None:
    created = enrollable(admin)
    for body in (
        {},
        {"personalizationToken": 5, "requiredPersonalizationInfo": INFO},
        {"personalizationToken": "t", "requiredPersonalizationInfo": {"shoeSize": "44"}},
        {"personalizationToken": "t", "requiredPersonalizationInfo": {"fullName": "x" * 1000}},
        {"personalizationToken": "t", "requiredPersonalizationInfo": []},
    ):
        assert client.post(personalize_url(created), json=body).status_code == 400
    plain = admin.create_pass()
    body = {"personalizationToken": "t", "requiredPersonalizationInfo": INFO}
    assert client.post(personalize_url(plain), json=body).status_code == 404
    wrong = client.post(
        personalize_url(created), json=body, headers={"Authorization": "ApplePass wrong"}
    )
    assert wrong.status_code == 401
    assert admin.get(pass_path(created) + "/personalization").status_code == 404
