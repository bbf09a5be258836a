"""Configuration from the environment and the credentials checked at start-up."""

from __future__ import annotations

import base64
import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app import database_url
from passes.credentials import CredentialsError, load_credentials
from passes.signing import sign_detached
from tests.apple_chain import FakeAppleChain, issue, make_chain, make_wwdr
from tests.conftest import ADMIN_TOKEN, P12_PASSWORD, PUBLIC_URL, SECRET_KEY
from tests.pkpass_tools import openssl_verify_detached


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@host:5432/db", "postgresql+psycopg2://u:p@host:5432/db"),
        ("postgresql://u@host/db", "postgresql+psycopg2://u@host/db"),
        ("postgresql+psycopg2://u@host/db", "postgresql+psycopg2://u@host/db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_database_url_names_the_psycopg2_driver(given: str, expected: str) -> None:
    assert database_url(given, "/instance") == expected


def test_database_url_defaults_to_sqlite_in_the_instance_folder() -> None:
    assert database_url(None, "/srv/instance") == "sqlite:////srv/instance/passes.db"


def test_missing_secret_key_stops_start_up_with_a_readable_message(
    make_app: Callable[..., Flask], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        make_app(SECRET_KEY=None)
    assert stopped.value.code == 3
    message = capsys.readouterr().err
    assert "SECRET_KEY is not set" in message
    assert "Traceback" not in message


def test_missing_public_url_stops_start_up(
    make_app: Callable[..., Flask], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        make_app(PUBLIC_URL=None)
    assert "PUBLIC_URL" in capsys.readouterr().err


def test_production_refuses_a_short_admin_token(
    make_app: Callable[..., Flask], capsys: pytest.CaptureFixture[str]
) -> None:
    for short in ("a", "x" * 23):
        with pytest.raises(SystemExit) as stopped:
            make_app(TESTING=False, ADMIN_TOKEN=short)
        assert stopped.value.code == 3
        message = capsys.readouterr().err
        assert "ADMIN_TOKEN" in message and "24" in message
        assert "Traceback" not in message
    assert make_app(TESTING=False, ADMIN_TOKEN="x" * 24).config["ADMIN_TOKEN"] == "x" * 24
    # Unset, the admin API is off: nothing to guess.
    assert make_app(TESTING=False, ADMIN_TOKEN=None).config["ADMIN_TOKEN"] is None


def test_development_and_tests_take_a_short_admin_token(make_app: Callable[..., Flask]) -> None:
    assert make_app(TESTING=False, DEVELOPMENT=True, ADMIN_TOKEN="a").config["ADMIN_TOKEN"] == "a"
    assert make_app(ADMIN_TOKEN="a").config["ADMIN_TOKEN"] == "a"


def test_server_without_credentials_starts_and_says_what_is_missing(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(PASS_CERTIFICATE=None, WWDR_CERTIFICATE=None)
    assert "PASS_CERTIFICATE" in caplog.text
    response = app.test_client().post(
        "/api/passes", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, json={}
    )
    assert response.status_code == 503
    assert "PASS_CERTIFICATE" in response.get_json()["message"]


def test_broken_credentials_stop_start_up_naming_the_variable(
    make_app: Callable[..., Flask], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        make_app(PASS_CERTIFICATE_PASSWORD="wrong")
    err = capsys.readouterr().err
    assert "PASS_CERTIFICATE_PASSWORD is wrong" in err
    assert "wrong" not in err.replace("is wrong", "")  # the password itself is not echoed


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("APNS_MAX_STREAMS", "lots"),
        ("PUSH_RATE", "fast"),
        ("PUSH_BATCH_SIZE", "0"),
        ("PUSH_BATCH_SIZE", "1.5"),
        ("PUSH_RATE", "-10"),
        ("PUSH_LEASE_SECONDS", "nan"),
        ("MAX_CONTENT_LENGTH", "5MB"),
    ],
)
def test_a_bad_numeric_setting_stops_start_up_naming_it(
    make_app: Callable[..., Flask],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        make_app()
    assert stopped.value.code == 3
    message = capsys.readouterr().err
    assert f"{name} is {value!r}" in message
    assert "Traceback" not in message


def test_numeric_settings_are_read_from_the_environment(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APNS_BACKOFF_SECONDS", " 2.5 ")
    monkeypatch.setenv("PUSH_BATCH_SIZE", "500")
    monkeypatch.setenv("APNS_MAX_STREAMS", "")  # empty: the default
    config = make_app().config
    assert (config["APNS_BACKOFF_SECONDS"], config["PUSH_BATCH_SIZE"]) == (2.5, 500)
    assert config["APNS_MAX_STREAMS"] == 100


def test_the_worker_command_refuses_a_bad_setting_in_one_paragraph() -> None:
    env = {
        "PATH": os.environ["PATH"],
        "SECRET_KEY": SECRET_KEY,
        "PUBLIC_URL": PUBLIC_URL,
        "DATABASE_URL": "sqlite://",
        "PUSH_RATE": "fast",
    }
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app:create_app", "passes", "worker", "--once"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "Cannot start: PUSH_RATE is 'fast', which is not a number" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def config(**values: Any) -> dict[str, Any]:
    return {
        "PASS_CERTIFICATE": None,
        "PASS_CERTIFICATE_BASE64": None,
        "PASS_CERTIFICATE_PASSWORD": None,
        "WWDR_CERTIFICATE": None,
        "WWDR_CERTIFICATE_BASE64": None,
        **values,
    }


def test_identifiers_come_from_the_p12(chain_files: dict[str, Path], chain: FakeAppleChain) -> None:
    credentials = load_credentials(
        config(
            PASS_CERTIFICATE=str(chain_files["pass_p12"]),
            PASS_CERTIFICATE_PASSWORD=P12_PASSWORD,
            WWDR_CERTIFICATE=str(chain_files["wwdr_der"]),
        )
    )
    assert credentials is not None
    assert credentials.pass_type_identifier == chain.pass_type_identifier
    assert credentials.team_identifier == chain.team_identifier
    assert "PRIVATE" not in repr(credentials)


def test_pem_and_base64_sources_load(chain_files: dict[str, Path]) -> None:
    from_pem = load_credentials(
        config(
            PASS_CERTIFICATE=str(chain_files["pass_pem"]),
            WWDR_CERTIFICATE=str(chain_files["wwdr"]),
        )
    )
    from_base64 = load_credentials(
        config(
            PASS_CERTIFICATE_BASE64=base64.b64encode(chain_files["pass_p12"].read_bytes()).decode(),
            PASS_CERTIFICATE_PASSWORD=P12_PASSWORD,
            WWDR_CERTIFICATE_BASE64=base64.b64encode(chain_files["wwdr"].read_bytes()).decode(),
        )
    )
    assert from_pem is not None and from_base64 is not None
    assert from_pem.certificate == from_base64.certificate


def test_pem_with_an_encrypted_key_needs_the_password(
    chain: FakeAppleChain, tmp_path: Path, chain_files: dict[str, Path]
) -> None:
    pem = tmp_path / "encrypted.pem"
    pem.write_bytes(chain.pass_cert.key_pem(b"pem-pass") + chain.pass_cert.cert_pem())
    with pytest.raises(CredentialsError, match="PASS_CERTIFICATE_PASSWORD"):
        load_credentials(
            config(PASS_CERTIFICATE=str(pem), WWDR_CERTIFICATE=str(chain_files["wwdr"]))
        )
    loaded = load_credentials(
        config(
            PASS_CERTIFICATE=str(pem),
            PASS_CERTIFICATE_PASSWORD="pem-pass",
            WWDR_CERTIFICATE=str(chain_files["wwdr"]),
        )
    )
    assert loaded is not None


def test_legacy_rc2_p12_as_keychain_exports_it_loads(
    chain_files: dict[str, Path], tmp_path: Path
) -> None:
    legacy = tmp_path / "legacy.p12"
    subprocess.run(
        [
            "openssl",
            "pkcs12",
            "-export",
            "-legacy",
            "-in",
            str(chain_files["pass_pem"]),
            "-out",
            str(legacy),
            "-passout",
            "pass:legacy-pass",
            "-certpbe",
            "PBE-SHA1-RC2-40",
            "-keypbe",
            "PBE-SHA1-3DES",
        ],
        check=True,
        capture_output=True,
    )
    loaded = load_credentials(
        config(
            PASS_CERTIFICATE=str(legacy),
            PASS_CERTIFICATE_PASSWORD="legacy-pass",
            WWDR_CERTIFICATE=str(chain_files["wwdr"]),
        )
    )
    assert loaded is not None


def write_pem(folder: Path, name: str, *parts: bytes) -> str:
    path = folder / name
    path.write_bytes(b"".join(parts))
    return str(path)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("key_mismatch", "does not belong to its certificate"),
        ("expired", "expired on"),
        ("not_a_pass_certificate", "not a Pass Type ID certificate"),
        ("other_wwdr", "No certificate in WWDR_CERTIFICATE issued"),
        ("missing_wwdr", "WWDR_CERTIFICATE is not"),
        ("unreadable", "cannot be read"),
        ("bad_base64", "not valid base64"),
        ("garbage_wwdr", "WWDR_CERTIFICATE is not a certificate"),
    ],
)
def test_unusable_credentials_are_refused_with_a_clear_message(
    chain: FakeAppleChain, chain_files: dict[str, Path], tmp_path: Path, case: str, message: str
) -> None:
    wwdr = str(chain_files["wwdr"])
    pass_pem = str(chain_files["pass_pem"])
    values: dict[str, Any]
    if case == "key_mismatch":
        other = make_chain()
        values = {
            "PASS_CERTIFICATE": write_pem(
                tmp_path, "p.pem", other.pass_cert.key_pem(), chain.pass_cert.cert_pem()
            ),
            "WWDR_CERTIFICATE": wwdr,
        }
    elif case == "expired":
        old = issue(
            chain.pass_cert.cert.subject,
            chain.wwdr,
            ca=False,
            not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
            not_after=dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
        )
        values = {
            "PASS_CERTIFICATE": write_pem(tmp_path, "p.pem", old.key_pem(), old.cert_pem()),
            "WWDR_CERTIFICATE": wwdr,
        }
    elif case == "not_a_pass_certificate":
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        plain = issue(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web server")]), chain.wwdr, ca=False
        )
        values = {
            "PASS_CERTIFICATE": write_pem(tmp_path, "p.pem", plain.key_pem(), plain.cert_pem()),
            "WWDR_CERTIFICATE": wwdr,
        }
    elif case == "other_wwdr":
        values = {
            "PASS_CERTIFICATE": pass_pem,
            "WWDR_CERTIFICATE": write_pem(tmp_path, "w.pem", make_chain().wwdr.cert_pem()),
        }
    elif case == "missing_wwdr":
        values = {"PASS_CERTIFICATE": pass_pem}
    elif case == "unreadable":
        values = {"PASS_CERTIFICATE": str(tmp_path / "nowhere.p12"), "WWDR_CERTIFICATE": wwdr}
    elif case == "bad_base64":
        values = {"PASS_CERTIFICATE_BASE64": "@@not base64@@", "WWDR_CERTIFICATE": wwdr}
    else:
        values = {
            "PASS_CERTIFICATE": pass_pem,
            "WWDR_CERTIFICATE": write_pem(tmp_path, "w.pem", b"garbage"),
        }
    with pytest.raises(CredentialsError, match=message):
        load_credentials(config(**values))


def test_certificate_expiring_soon_is_warned_about(
    chain: FakeAppleChain,
    chain_files: dict[str, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    soon = issue(
        chain.pass_cert.cert.subject,
        chain.wwdr,
        ca=False,
        not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=10),
    )
    loaded = load_credentials(
        config(
            PASS_CERTIFICATE=write_pem(tmp_path, "p.pem", soon.key_pem(), soon.cert_pem()),
            WWDR_CERTIFICATE=str(chain_files["wwdr"]),
        )
    )
    assert loaded is not None
    assert "expires in" in caplog.text


# --- the WWDR intermediate, chosen from several --------------------------------------------


def der(*certificates: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return b"".join(certificate.cert.public_bytes(Encoding.DER) for certificate in certificates)


@pytest.mark.parametrize("form", ["PEM bundle", "DER back to back", "base64 of DER"])
def test_the_wwdr_that_issued_the_pass_certificate_is_chosen_from_several(
    chain: FakeAppleChain,
    chain_files: dict[str, Path],
    tmp_path: Path,
    form: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Apple's G3 and G6 under the same root; only G4 issued this pass certificate.
    g3, g6 = make_wwdr(chain.root, "G3"), make_wwdr(chain.root, "G6")
    source: dict[str, str]
    if form == "PEM bundle":
        bundle = g3.cert_pem() + chain.wwdr.cert_pem() + g6.cert_pem()
        source = {"WWDR_CERTIFICATE": write_pem(tmp_path, "wwdr.pem", bundle)}
    elif form == "DER back to back":
        (tmp_path / "wwdr.cer").write_bytes(der(g3, g6, chain.wwdr))
        source = {"WWDR_CERTIFICATE": str(tmp_path / "wwdr.cer")}
    else:
        source = {"WWDR_CERTIFICATE_BASE64": base64.b64encode(der(chain.wwdr, g3)).decode()}

    credentials = load_credentials(config(PASS_CERTIFICATE=str(chain_files["pass_pem"]), **source))

    assert credentials is not None
    assert credentials.wwdr == chain.wwdr.cert
    assert "WWDR intermediate: 'Fake Apple Worldwide Developer Relations" in caplog.text
    # The signature carries that intermediate, so the chain reaches Apple's root.
    signature = sign_detached(b"manifest", credentials)
    assert (
        openssl_verify_detached(
            b"manifest", signature, chain_files["root"], tmp_path / "v"
        ).returncode
        == 0
    )


def test_a_pass_certificate_none_of_the_wwdrs_issued_is_refused_naming_the_download(
    chain: FakeAppleChain, chain_files: dict[str, Path], tmp_path: Path
) -> None:
    g3, g5 = make_wwdr(chain.root, "G3"), make_wwdr(chain.root, "G5")
    wwdr = write_pem(tmp_path, "wwdr.pem", g3.cert_pem() + g5.cert_pem())

    with pytest.raises(CredentialsError) as refused:
        load_credentials(
            config(PASS_CERTIFICATE=str(chain_files["pass_pem"]), WWDR_CERTIFICATE=wwdr)
        )

    message = str(refused.value)
    assert "issued by 'Fake Apple Worldwide Developer Relations Certification Authority' (G4)" in (
        message
    )
    assert "(G3)" in message and "(G5)" in message
    assert (
        "Download AppleWWDRCAG4.cer from https://www.apple.com/certificateauthority/ and add it "
        "to WWDR_CERTIFICATE" in message
    )


def test_an_expired_issuing_wwdr_is_refused_even_beside_current_ones(
    chain: FakeAppleChain, tmp_path: Path
) -> None:
    old = make_wwdr(
        chain.root,
        "G2",
        not_before=dt.datetime(2015, 1, 1, tzinfo=dt.UTC),
        not_after=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    )
    # A pass certificate that outlives its (fake) intermediate.
    signer = issue(chain.pass_cert.cert.subject, old, ca=False)
    wwdr = write_pem(tmp_path, "wwdr.pem", old.cert_pem() + chain.wwdr.cert_pem())

    with pytest.raises(
        CredentialsError, match="that issued the pass certificate expired on 2025-01-01"
    ):
        load_credentials(
            config(
                PASS_CERTIFICATE=write_pem(tmp_path, "p.pem", signer.key_pem(), signer.cert_pem()),
                WWDR_CERTIFICATE=wwdr,
            )
        )


def test_junk_after_a_der_wwdr_is_refused(
    chain: FakeAppleChain, chain_files: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "wwdr.cer").write_bytes(der(chain.wwdr) + b"\x30\x82\x05")

    with pytest.raises(CredentialsError, match="WWDR_CERTIFICATE is not a certificate"):
        load_credentials(
            config(
                PASS_CERTIFICATE=str(chain_files["pass_pem"]),
                WWDR_CERTIFICATE=str(tmp_path / "wwdr.cer"),
            )
        )
