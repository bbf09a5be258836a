"""Tests for the .pkpass verifier, on passes built and signed here the way the app signs them."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import shutil
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from cryptography.hazmat.primitives.serialization.pkcs7 import PKCS7Options
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from passes.verify import Check, VerifyReport, verify_pkpass
from tests.apple_chain import FakeAppleChain, Issued, issue, make_chain, signed_with_sha1

CHECK_NAMES = {
    "zip layout",
    "manifest",
    "signature",
    "certificate chain",
    "pass.json",
    "identifiers",
    "images",
    "web service",
}


def png(width: int = 1, height: int = 1) -> bytes:
    """A real (tiny, grey) PNG."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + b"\x80" * width for _ in range(height)))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def pass_json(chain: FakeAppleChain, **changes: Any) -> bytes:
    content: dict[str, Any] = {
        "formatVersion": 1,
        "passTypeIdentifier": chain.pass_type_identifier,
        "teamIdentifier": chain.team_identifier,
        "serialNumber": "card-0001",
        "organizationName": "Example Shop",
        "description": "Example loyalty card",
        "webServiceURL": "https://passes.example.com/",
        "authenticationToken": "a-long-enough-token-0123456789",
        "storeCard": {"primaryFields": [{"key": "points", "label": "Points", "value": 10}]},
    }
    content.update(changes)
    return json.dumps({k: v for k, v in content.items() if v is not None}).encode()


def content_files(chain: FakeAppleChain, **changes: Any) -> dict[str, bytes]:
    return {
        "pass.json": pass_json(chain, **changes),
        "icon.png": png(29, 29),
        "icon@2x.png": png(58, 58),
        "logo.png": png(3, 1),
        "en.lproj/pass.strings": b'"points" = "Points";\n',
    }


def manifest_for(files: dict[str, bytes]) -> bytes:
    return json.dumps(
        {name: hashlib.sha1(body).hexdigest() for name, body in files.items()}
    ).encode()


def sign(
    manifest: bytes,
    signer: x509.Certificate,
    key: Any,
    wwdr: x509.Certificate,
    digest: hashes.HashAlgorithm | None = None,
    extra_options: tuple[PKCS7Options, ...] = (),
) -> bytes:
    """Sign as the app does: detached, binary, DER, with the WWDR intermediate included."""
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(manifest)
        .add_signer(signer, key, digest or hashes.SHA256())
        .add_certificate(wwdr)
        .sign(
            Encoding.DER,
            [PKCS7Options.DetachedSignature, PKCS7Options.Binary, *extra_options],
        )
    )


def signed_files(
    chain: FakeAppleChain,
    files: dict[str, bytes] | None = None,
    *,
    signer: Issued | None = None,
    wwdr: x509.Certificate | None = None,
    **sign_options: Any,
) -> dict[str, bytes]:
    """The pass's files plus manifest.json and a signature over it."""
    files = dict(files if files is not None else content_files(chain))
    signer = signer or chain.pass_cert
    manifest = manifest_for(files)
    files["manifest.json"] = manifest
    files["signature"] = sign(
        manifest, signer.cert, signer.key, wwdr or chain.wwdr.cert, **sign_options
    )
    return files


def zip_pass(files: dict[str, bytes], folder: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in files.items():
            archive.writestr(folder + name, body)
    return buffer.getvalue()


def failures(report: VerifyReport, name: str) -> list[Check]:
    return [check for check in report.checks if check.name == name and not check.ok]


def warnings(report: VerifyReport, name: str) -> list[Check]:
    return [check for check in report.checks if check.name == name and check.warning]


def only_failures(report: VerifyReport) -> set[str]:
    return {check.name for check in report.checks if not check.ok}


def subject(common_name: str, **attributes: str) -> x509.Name:
    names = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if "uid" in attributes:
        names.append(x509.NameAttribute(NameOID.USER_ID, attributes["uid"]))
    if "ou" in attributes:
        names.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, attributes["ou"]))
    names.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fake Apple Inc."))
    return x509.Name(names)


def pass_subject(chain: FakeAppleChain) -> x509.Name:
    return subject(
        f"Pass Type ID: {chain.pass_type_identifier}",
        uid=chain.pass_type_identifier,
        ou=chain.team_identifier,
    )


# `chain` (root -> WWDR -> Pass Type ID certificate) comes from conftest.py.


@pytest.fixture(scope="module")
def other_chain() -> FakeAppleChain:
    """Same identifiers, different keys: what a stranger's certificates look like."""
    return make_chain()


@pytest.fixture(scope="module")
def good_files(chain: FakeAppleChain) -> dict[str, bytes]:
    return signed_files(chain)


# --- the good pass --------------------------------------------------------------------------


def test_good_pass_passes_every_check(chain: FakeAppleChain, good_files: dict[str, bytes]) -> None:
    report = verify_pkpass(zip_pass(good_files), trusted_roots=[chain.root.cert])

    assert report.ok, report.render()
    assert {check.name for check in report.checks} == CHECK_NAMES
    assert all(check.ok for check in report.checks)
    # The fake certificate lacks Apple's Pass Type ID marker; that is the only thing to mention.
    assert [check.detail for check in report.checks if check.warning] == [
        check.detail for check in warnings(report, "certificate chain")
    ]
    assert len(warnings(report, "certificate chain")) == 1
    assert "1.2.840.113635.100.6.1.16" in warnings(report, "certificate chain")[0].detail
    signature = next(check for check in report.checks if check.name == "signature")
    assert "RSA/SHA256" in signature.detail and "signed 20" in signature.detail
    chain_check = next(c for c in report.checks if c.name == "certificate chain" and not c.warning)
    assert "trusted root 'Fake Apple Root CA'" in chain_check.detail


def test_good_pass_without_roots_says_root_not_checked(good_files: dict[str, bytes]) -> None:
    report = verify_pkpass(zip_pass(good_files))

    assert report.ok
    chain_check = next(c for c in report.checks if c.name == "certificate chain" and not c.warning)
    assert "not checked against Apple's root" in chain_check.detail


def test_render_shows_a_line_per_check_and_the_result(good_files: dict[str, bytes]) -> None:
    lines = verify_pkpass(zip_pass(good_files)).render().splitlines()

    assert lines[0].startswith("PASS  zip layout")
    assert any(line.startswith("WARN  certificate chain") for line in lines)
    assert lines[-1] == "Result: PASS (0 failed, 1 warnings)"


def test_render_shows_fail_lines(chain: FakeAppleChain) -> None:
    files = content_files(chain)
    del files["icon.png"], files["icon@2x.png"]  # an icon at any scale would do
    rendered = verify_pkpass(zip_pass(signed_files(chain, files))).render()

    assert "FAIL  images" in rendered
    assert "icon.png is missing" in rendered
    assert rendered.splitlines()[-1].startswith("Result: FAIL (1 failed")


# --- agreement with openssl -----------------------------------------------------------------


def openssl_verifies(folder: Path, files: dict[str, bytes], root: x509.Certificate) -> bool:
    folder.mkdir()
    (folder / "manifest.json").write_bytes(files["manifest.json"])
    (folder / "signature").write_bytes(files["signature"])
    (folder / "root.pem").write_bytes(root.public_bytes(Encoding.PEM))
    result = subprocess.run(
        ["openssl", "smime", "-verify", "-inform", "DER", "-binary"]
        + ["-content", "manifest.json", "-in", "signature", "-CAfile", "root.pem"]
        + ["-purpose", "any", "-out", "content.out"],
        cwd=folder,
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def tampered(case: str, chain: FakeAppleChain, other: FakeAppleChain) -> dict[str, bytes]:
    files = signed_files(chain)
    if case == "file changed after signing":
        files["pass.json"] = pass_json(chain, serialNumber="card-9999")
    elif case == "manifest changed after signing":
        manifest = json.loads(files["manifest.json"])
        manifest["logo.png"] = "0" * 40
        files["manifest.json"] = json.dumps(manifest).encode()
    elif case == "signed with another key":
        files["signature"] = sign(
            files["manifest.json"], chain.pass_cert.cert, other.pass_cert.key, chain.wwdr.cert
        )
    elif case == "pass certificate not issued by the included WWDR":
        files["signature"] = sign(
            files["manifest.json"], other.pass_cert.cert, other.pass_cert.key, chain.wwdr.cert
        )
    return files


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.parametrize(
    ("case", "signature_valid"),
    [
        ("good", True),
        ("file changed after signing", True),  # the signature covers the manifest only
        ("manifest changed after signing", False),
        ("signed with another key", False),
        ("pass certificate not issued by the included WWDR", False),
    ],
)
def test_signature_verdict_agrees_with_openssl(
    tmp_path: Path,
    chain: FakeAppleChain,
    other_chain: FakeAppleChain,
    case: str,
    signature_valid: bool,
) -> None:
    files = tampered(case, chain, other_chain)
    report = verify_pkpass(zip_pass(files), trusted_roots=[chain.root.cert])
    ours = not failures(report, "signature") and not failures(report, "certificate chain")

    assert openssl_verifies(tmp_path / "openssl", files, chain.root.cert) is signature_valid
    assert ours is signature_valid, report.render()


# --- tampering and signing mistakes ---------------------------------------------------------


def test_file_changed_after_signing_fails_the_manifest(chain: FakeAppleChain) -> None:
    files = signed_files(chain)
    files["logo.png"] = png(4, 1)

    report = verify_pkpass(zip_pass(files))

    assert only_failures(report) == {"manifest"}
    assert "'logo.png' does not match its SHA-1" in failures(report, "manifest")[0].detail


def test_manifest_changed_after_signing_fails_the_signature(chain: FakeAppleChain) -> None:
    files = signed_files(chain)
    files["manifest.json"] += b" "  # still valid JSON listing the right hashes

    report = verify_pkpass(zip_pass(files))

    assert only_failures(report) == {"signature"}
    assert "does not match the digest that was signed" in failures(report, "signature")[0].detail


def test_signature_from_another_key_fails(
    chain: FakeAppleChain, other_chain: FakeAppleChain
) -> None:
    report = verify_pkpass(zip_pass(tampered("signed with another key", chain, other_chain)))

    assert only_failures(report) == {"signature"}
    assert "does not verify" in failures(report, "signature")[0].detail


def test_pass_certificate_not_issued_by_included_wwdr_fails(
    chain: FakeAppleChain, other_chain: FakeAppleChain
) -> None:
    files = tampered("pass certificate not issued by the included WWDR", chain, other_chain)

    report = verify_pkpass(zip_pass(files))

    assert only_failures(report) == {"certificate chain"}
    assert "not issued by any WWDR" in failures(report, "certificate chain")[0].detail


def test_wwdr_not_issued_by_trusted_root_fails(
    chain: FakeAppleChain, other_chain: FakeAppleChain, good_files: dict[str, bytes]
) -> None:
    report = verify_pkpass(zip_pass(good_files), trusted_roots=[other_chain.root.cert])

    assert only_failures(report) == {"certificate chain"}
    assert "not issued by any trusted root" in failures(report, "certificate chain")[0].detail


def test_missing_manifest_entry_and_unlisted_file_fail(chain: FakeAppleChain) -> None:
    files = signed_files(chain)
    del files["logo.png"]
    files["strip.png"] = png()

    details = [check.detail for check in failures(verify_pkpass(zip_pass(files)), "manifest")]

    assert len(details) == 2
    assert "'logo.png' is listed in manifest.json but missing" in details[0]
    assert "'strip.png' is in the zip but not listed" in details[1]


# --- certificates ---------------------------------------------------------------------------


def test_expired_pass_certificate_fails() -> None:
    now = dt.datetime.now(dt.UTC)
    expired = make_chain(not_before=now - dt.timedelta(days=400), not_after=now - dt.timedelta(1))

    report = verify_pkpass(zip_pass(signed_files(expired)))

    assert only_failures(report) == {"certificate chain"}
    assert "pass certificate expired on" in failures(report, "certificate chain")[0].detail


def test_not_yet_valid_pass_certificate_fails(
    chain: FakeAppleChain, good_files: dict[str, bytes]
) -> None:
    before = chain.pass_cert.cert.not_valid_before_utc - dt.timedelta(hours=1)

    report = verify_pkpass(zip_pass(good_files), now=before)

    assert "pass certificate is not valid until" in failures(report, "certificate chain")[0].detail


def test_pass_certificate_expiring_soon_is_a_warning(
    chain: FakeAppleChain, good_files: dict[str, bytes]
) -> None:
    soon = chain.pass_cert.cert.not_valid_after_utc - dt.timedelta(days=10, hours=1)

    report = verify_pkpass(zip_pass(good_files), now=soon)

    assert report.ok
    details = [check.detail for check in warnings(report, "certificate chain")]
    assert any("pass certificate expires in 10 days" in detail for detail in details)


@pytest.mark.parametrize(
    ("unit", "not_after"),
    [
        ("G1", None),
        # Apple's original WWDR: no "G1" in its name, recognised by name and expiry date.
        ("Apple Worldwide Developer Relations", dt.datetime(2023, 2, 7, 21, 48, 47, tzinfo=dt.UTC)),
    ],
    ids=["OU G1", "original WWDR"],
)
def test_wwdr_g1_intermediate_is_flagged(
    chain: FakeAppleChain, unit: str, not_after: dt.datetime | None
) -> None:
    g1 = issue(
        subject("Apple Worldwide Developer Relations Certification Authority", ou=unit),
        chain.root,
        ca=True,
        not_before=not_after and not_after - dt.timedelta(days=3652),
        not_after=not_after,
    )
    signer = issue(
        pass_subject(chain), g1, ca=False, extended_usages=[ExtendedKeyUsageOID.CLIENT_AUTH]
    )

    report = verify_pkpass(
        zip_pass(signed_files(chain, signer=signer, wwdr=g1.cert)),
        trusted_roots=[chain.root.cert],
    )

    assert only_failures(report) == {"certificate chain"}
    assert [c.detail for c in failures(report, "certificate chain")] == [
        "the included WWDR intermediate is G1, which expired on 2023-02-07 and current iOS "
        "rejects; sign with the current WWDR (G4) from https://www.apple.com/certificateauthority/"
    ]


G1_EXPIRY = dt.datetime(2023, 2, 7, 21, 48, 47, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def sha1_g1_chain(chain: FakeAppleChain) -> tuple[Issued, Issued]:
    """WWDR G1 and a pass certificate it issued in 2018, both signed with sha1WithRSA."""
    g1 = signed_with_sha1(
        issue(
            subject(
                "Apple Worldwide Developer Relations Certification Authority",
                ou="Apple Worldwide Developer Relations",
            ),
            chain.root,
            ca=True,
            not_before=G1_EXPIRY - dt.timedelta(days=3652),
            not_after=G1_EXPIRY,
        ),
        chain.root,
    )
    signer = signed_with_sha1(
        issue(
            pass_subject(chain),
            g1,
            ca=False,
            not_before=dt.datetime(2018, 6, 1, tzinfo=dt.UTC),
            not_after=dt.datetime(2019, 6, 1, tzinfo=dt.UTC),
            extended_usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
        ),
        g1,
    )
    assert signer.cert.signature_hash_algorithm is not None
    assert signer.cert.signature_hash_algorithm.name == "sha1"
    return g1, signer


@pytest.mark.parametrize(
    "now",
    [dt.datetime(2019, 1, 15, tzinfo=dt.UTC), None],
    ids=["when it was made", "today"],
)
def test_sha1_pass_certificate_is_seen_as_issued_by_wwdr_g1(
    chain: FakeAppleChain, sha1_g1_chain: tuple[Issued, Issued], now: dt.datetime | None
) -> None:
    g1, signer = sha1_g1_chain
    files = signed_files(chain, signer=signer, wwdr=g1.cert)

    # The fake root is younger than the 2019 pass; today the root also checks G1's SHA-1.
    roots = [chain.root.cert] if now is None else None
    report = verify_pkpass(zip_pass(files), trusted_roots=roots, now=now)

    assert only_failures(report) == {"certificate chain"}
    details = [check.detail for check in failures(report, "certificate chain")]
    assert "not issued by any WWDR" not in " ".join(details)
    g1_expired = (
        "the included WWDR intermediate is G1, which expired on 2023-02-07 and current iOS "
        "rejects; sign with the current WWDR (G4) from https://www.apple.com/certificateauthority/"
    )
    if now is None:
        assert details == [
            "the pass certificate expired on 2019-06-01 00:00 UTC; get a new one and sign again",
            g1_expired,
        ]
    else:
        assert details == [g1_expired]


def test_sha1_certificate_from_another_issuer_key_is_not_issued_by_it(
    chain: FakeAppleChain, other_chain: FakeAppleChain, sha1_g1_chain: tuple[Issued, Issued]
) -> None:
    g1, _ = sha1_g1_chain
    # Same names as the real G1 signer, but signed by a stranger's key.
    impostor = signed_with_sha1(
        issue(pass_subject(chain), g1, ca=False), Issued(g1.cert, other_chain.wwdr.key)
    )
    files = signed_files(chain, signer=impostor, wwdr=g1.cert)

    report = verify_pkpass(zip_pass(files), trusted_roots=[chain.root.cert])

    assert [check.detail for check in failures(report, "certificate chain")] == [
        "the pass certificate is not issued by any WWDR certificate included in the "
        "signature; include Apple's current WWDR intermediate (G4, "
        "https://www.apple.com/certificateauthority/)"
    ]


def test_ecdsa_signer_is_accepted_and_checked(chain: FakeAppleChain) -> None:
    signer = issue(
        pass_subject(chain), chain.wwdr, ca=False, key=ec.generate_private_key(ec.SECP256R1())
    )
    files = signed_files(chain, signer=signer)

    good = verify_pkpass(zip_pass(files), trusted_roots=[chain.root.cert])
    files["manifest.json"] += b"\n"
    bad = verify_pkpass(zip_pass(files))

    assert good.ok, good.render()
    assert "ECDSA/SHA256" in next(c for c in good.checks if c.name == "signature").detail
    assert only_failures(bad) == {"signature"}


# --- signature encodings --------------------------------------------------------------------


def openssl_sign(folder: Path, chain: FakeAppleChain, manifest: bytes, digest: str) -> bytes:
    """Sign with `openssl smime`, as many existing pass tools do."""
    paths = chain.write(folder)
    (folder / "manifest.json").write_bytes(manifest)
    subprocess.run(
        ["openssl", "smime", "-sign", "-binary", "-md", digest, "-in", "manifest.json"]
        + ["-signer", str(paths["pass_pem"]), "-certfile", str(paths["wwdr"])]
        + ["-outform", "DER", "-out", "signature"],
        cwd=folder,
        capture_output=True,
        check=True,
    )
    return (folder / "signature").read_bytes()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.parametrize("digest", ["sha1", "sha256"])
def test_openssl_signature_is_accepted_with_sha1_or_sha256(
    tmp_path: Path, chain: FakeAppleChain, good_files: dict[str, bytes], digest: str
) -> None:
    # cryptography no longer signs PKCS#7 with SHA-1, but older passes in the wild are.
    signature = openssl_sign(tmp_path, chain, good_files["manifest.json"], digest)
    files = dict(good_files, signature=signature)

    good = verify_pkpass(zip_pass(files), trusted_roots=[chain.root.cert])
    files["manifest.json"] += b" "
    bad = verify_pkpass(zip_pass(files))

    assert good.ok, good.render()
    assert f"RSA/{digest.upper()}" in next(c for c in good.checks if c.name == "signature").detail
    assert only_failures(bad) == {"signature"}


def test_signature_without_signed_attributes_covers_the_manifest(chain: FakeAppleChain) -> None:
    files = signed_files(chain, extra_options=(PKCS7Options.NoAttributes,))

    good = verify_pkpass(zip_pass(files))
    files["manifest.json"] += b" "
    bad = verify_pkpass(zip_pass(files))

    assert good.ok, good.render()
    assert [c.detail for c in warnings(good, "signature")] == [
        "no signing time in the signature; Apple asks for the signing-time attribute"
    ]
    assert only_failures(bad) == {"signature"}
    assert "does not verify" in failures(bad, "signature")[0].detail


def test_indefinite_length_outer_encoding_is_read(good_files: dict[str, bytes]) -> None:
    der = good_files["signature"]
    header = 2 + (der[1] & 0x7F if der[1] & 0x80 else 0)
    files = dict(good_files, signature=b"\x30\x80" + der[header:] + b"\x00\x00")

    assert verify_pkpass(zip_pass(files)).ok


@pytest.mark.parametrize(
    "mangle",
    [
        lambda der: b"",
        lambda der: b"not a signature at all",
        lambda der: der[: len(der) // 2],
        lambda der: der + b"\x00",
        lambda der: b"\x30\x84\xff\xff\xff\xff" + der,
        lambda der: b"\x30\x80" + b"\x30\x80" * 100,
    ],
    ids=["empty", "text", "truncated", "trailing byte", "huge length", "unterminated"],
)
def test_garbage_signature_fails_without_raising(good_files: dict[str, bytes], mangle: Any) -> None:
    files = dict(good_files, signature=mangle(good_files["signature"]))

    report = verify_pkpass(zip_pass(files))

    assert "not a valid PKCS#7 SignedData" in failures(report, "signature")[0].detail
    assert only_failures(report) == {"signature", "certificate chain", "identifiers"}


# --- pass contents --------------------------------------------------------------------------


def test_missing_icon_fails(chain: FakeAppleChain) -> None:
    files = content_files(chain)
    del files["icon.png"], files["icon@2x.png"]  # an icon at any scale would do

    report = verify_pkpass(zip_pass(signed_files(chain, files)))

    assert only_failures(report) == {"images"}


def test_image_that_is_not_a_png_fails(chain: FakeAppleChain) -> None:
    files = content_files(chain)
    files["logo.png"] = b"\xff\xd8\xff\xe0 a JPEG"

    report = verify_pkpass(zip_pass(signed_files(chain, files)))

    # Found by the validation module, with the file's path and what to do.
    [detail] = [c.detail for c in failures(report, "images")]
    assert detail.startswith("logo.png: logo.png is not a valid PNG")
    assert "the file is a JPEG image" in detail and "Export the image again" in detail


def test_wrong_team_identifier_fails(chain: FakeAppleChain) -> None:
    files = content_files(chain, teamIdentifier="ZZZZZ99999")

    report = verify_pkpass(zip_pass(signed_files(chain, files)))

    assert only_failures(report) == {"identifiers"}
    assert "teamIdentifier 'ZZZZZ99999'" in failures(report, "identifiers")[0].detail


def test_wrong_pass_type_identifier_fails(chain: FakeAppleChain) -> None:
    files = content_files(chain, passTypeIdentifier="pass.com.example.other")

    report = verify_pkpass(zip_pass(signed_files(chain, files)))

    assert "passTypeIdentifier" in failures(report, "identifiers")[0].detail


def test_pass_json_without_required_keys_fails(chain: FakeAppleChain) -> None:
    files = content_files(chain, serialNumber=None, storeCard=None)

    details = [
        c.detail for c in failures(verify_pkpass(zip_pass(signed_files(chain, files))), "pass.json")
    ]

    # Found by the validation module: the path, what is wrong, and what to do.
    assert len(details) == 2
    assert details[0] == (
        "$.serialNumber: pass.json has no serialNumber, which every pass needs. "
        "(Add the serialNumber key at the top level of pass.json.)"
    )
    assert details[1].startswith("$: pass.json has no pass style")
    assert "boardingPass, coupon, eventTicket, generic, storeCard" in details[1]


@pytest.mark.parametrize(
    ("changes", "outcome", "text"),
    [
        ({"webServiceURL": "http://localhost:5000/"}, "warn", "only while developing"),
        ({"webServiceURL": "http://127.0.0.1:5000/"}, "warn", "only while developing"),
        ({"webServiceURL": "http://[::1]:5000/"}, "warn", "only while developing"),
        ({"webServiceURL": "http://passes.example.com/"}, "fail", "requires https"),
        ({"authenticationToken": "short"}, "fail", "at least 16"),
        ({"authenticationToken": None}, "fail", "at least 16 characters"),
        # Validation's rule: a token without a URL is unused, not broken.
        ({"webServiceURL": None}, "warn", "authenticationToken but no webServiceURL"),
        ({"webServiceURL": None, "authenticationToken": None}, "pass", "will not receive updates"),
    ],
)
def test_web_service_settings(
    chain: FakeAppleChain, changes: dict[str, Any], outcome: str, text: str
) -> None:
    report = verify_pkpass(zip_pass(signed_files(chain, content_files(chain, **changes))))
    checks = [check for check in report.checks if check.name == "web service"]

    assert {"pass": {"PASS"}, "warn": {"PASS", "WARN"}, "fail": {"FAIL"}}[outcome] == {
        "FAIL" if not c.ok else "WARN" if c.warning else "PASS" for c in checks
    }
    assert any(text in check.detail for check in checks)


# --- zip layout -----------------------------------------------------------------------------


def test_files_zipped_inside_a_folder_fail_with_advice(good_files: dict[str, bytes]) -> None:
    report = verify_pkpass(zip_pass(good_files, folder="Loyalty.pass/"))

    layout = failures(report, "zip layout")
    assert len(layout) == 3
    assert "pass.json is inside 'Loyalty.pass/'" in layout[0].detail
    assert "zip the folder's contents" in layout[0].detail
    assert not report.ok


def test_traversal_names_and_duplicates_fail(good_files: dict[str, bytes]) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, body in good_files.items():
            archive.writestr(name, body)
        archive.writestr("../evil.png", png())
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("icon.png", png())

    details = [c.detail for c in failures(verify_pkpass(buffer.getvalue()), "zip layout")]

    assert any("unsafe file name '../evil.png'" in detail for detail in details)
    assert any("'icon.png' appears 2 times" in detail for detail in details)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda data: b"",
        lambda data: b"garbage bytes, not a zip",
        lambda data: data[: len(data) // 2],
        lambda data: data[:-10],
    ],
    ids=["empty", "garbage", "half", "cut end"],
)
def test_unreadable_zip_fails_every_check_without_raising(
    good_files: dict[str, bytes], mangle: Any
) -> None:
    report = verify_pkpass(mangle(zip_pass(good_files)))

    assert not report.ok
    assert {check.name for check in report.checks} == CHECK_NAMES
    assert only_failures(report) == CHECK_NAMES
    assert "not a readable zip archive" in failures(report, "zip layout")[0].detail


def test_corrupt_member_fails_without_raising(good_files: dict[str, bytes]) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, body in good_files.items():
            archive.writestr(name, body)
    data = buffer.getvalue()
    start = data.index(good_files["pass.json"])
    corrupt = data[:start] + b"X" + data[start + 1 :]

    report = verify_pkpass(corrupt)

    assert only_failures(report) == CHECK_NAMES
    assert "Bad CRC-32" in failures(report, "zip layout")[0].detail
