"""Rewards enrollment: Wallet's sign-up form, the signed token, the personalized pass."""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Admin
from tests.pkpass_tools import openssl_verify_detached, unzip
from tests.test_admin import PNG, pass_path
from tests.test_concurrency import run_together
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
    assert again.status_code == 404


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


# What the pass certificate signs is trusted by Wallet as the signature of a manifest.json
# (a JSON object of file digests): none of these may come back signed.
MANIFEST = json.dumps({"pass.json": "0" * 40, "icon.png": "1" * 40})
NOT_SIGNABLE = {
    "a manifest": MANIFEST,
    "a manifest after whitespace": " \r\n\t" + MANIFEST,
    "a manifest after a byte order mark": "\ufeff" + MANIFEST,
    "a JSON array": json.dumps(["pass.json"]),
    # Apple's JSONSerialization detects UTF-16 and UTF-32 from the first bytes.
    "a manifest in UTF-16": MANIFEST.encode("utf-16-le").decode("ascii"),
    "longer than 512 characters": "a" * 513,
    "not ASCII": "t\u00f6ken",
    "a control character": "token\x1b[0m",
    "a trailing newline": "token\n",
    "empty": "",
}


@pytest.mark.parametrize("token", NOT_SIGNABLE.values(), ids=NOT_SIGNABLE.keys())
def test_enrollment_never_signs_what_could_pass_for_a_manifest(
    client: FlaskClient, admin: Admin, token: str
) -> None:
    created = enrollable(admin)
    body = {"personalizationToken": token, "requiredPersonalizationInfo": INFO}
    response = client.post(personalize_url(created), json=body)
    assert response.status_code == 400
    assert response.get_json()["path"] == "$.personalizationToken"
    assert admin.get(pass_path(created) + "/personalization").status_code == 404
    # Nothing was used up: Wallet's real request still enrolls.
    body["personalizationToken"] = "aGVsbG8tdG9rZW4tZnJvbS13YWxsZXQ="
    assert client.post(personalize_url(created), json=body).status_code == 200


def test_unknown_passes_and_passes_that_cannot_enroll_answer_alike(
    client: FlaskClient, admin: Admin
) -> None:
    """Serial numbers cannot be probed: an unknown pass, one without enrollment and one
    already personalized get the same answer, for good bodies and bad ones."""
    plain = admin.create_pass()
    enrolled = enrollable(admin)
    good = {"personalizationToken": "t", "requiredPersonalizationInfo": INFO}
    assert client.post(personalize_url(enrolled), json=good).status_code == 200
    unknown = {**plain, "serialNumber": "no-such-pass"}

    def answer(pass_: dict[str, Any], body: Any, **headers: str) -> tuple[int, Any]:
        response = client.post(personalize_url(pass_), json=body, headers=headers)
        return response.status_code, response.get_json()

    for body in (good, {}, {"personalizationToken": MANIFEST}):
        answers = {json.dumps(answer(p, body)) for p in (unknown, plain, enrolled)}
        assert len(answers) == 1, answers
    assert answer(unknown, good)[0] == 404
    assert answer(unknown, {})[0] == 400
    # A wrong token is still refused as such.
    for pass_ in (unknown, plain, enrolled):
        assert answer(pass_, good, Authorization="ApplePass wrong")[0] == 401


ENROLLMENTS = 24


def test_simultaneous_enrollments_personalize_the_pass_once(
    app: Flask, admin: Admin, chain_files: dict[str, Path], tmp_path: Path
) -> None:
    created = enrollable(admin)

    def enroll(index: int) -> tuple[int, bytes]:
        body = {
            "personalizationToken": f"token-{index}",
            "requiredPersonalizationInfo": {"fullName": f"Member {index}"},
        }
        response = app.test_client().post(personalize_url(created), json=body)
        return response.status_code, response.data

    answers = run_together(ENROLLMENTS, enroll)
    assert Counter(status for status, _ in answers) == {200: 1, 404: ENROLLMENTS - 1}
    winner = next(index for index, (status, _) in enumerate(answers) if status == 200)
    enrolled = admin.get(pass_path(created) + "/personalization").get_json()
    assert enrolled["requiredPersonalizationInfo"] == {"fullName": f"Member {winner}"}
    signature = answers[winner][1]
    verified = openssl_verify_detached(
        f"token-{winner}".encode(), signature, chain_files["root"], tmp_path
    )
    assert verified.returncode == 0, verified.stderr
