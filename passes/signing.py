"""Turning a set of pass files into a signed .pkpass: manifest, signature, zip."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from passes.credentials import PassCredentials

PKPASS_MIMETYPE = "application/vnd.apple.pkpass"


def sha1_hex(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # SHA-1: what Apple specifies for manifest.json


def make_manifest(files: Mapping[str, bytes], known: Mapping[str, str] | None = None) -> bytes:
    """manifest.json: the SHA-1 of every file, reusing digests the caller already knows."""
    known = known or {}
    digests = {
        name: known.get(name) or sha1_hex(content) for name, content in sorted(files.items())
    }
    return json.dumps(digests, indent=None, separators=(",", ":")).encode()


def sign_detached(data: bytes, credentials: PassCredentials) -> bytes:
    """A detached PKCS#7 signature in DER (over manifest.json, or a personalization token),
    carrying the WWDR certificate.

    cryptography adds the contentType, signingTime and messageDigest attributes that
    Wallet expects.
    """
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(data)
        .add_signer(credentials.certificate, credentials.private_key, hashes.SHA256())
        .add_certificate(credentials.wwdr)
        .sign(Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary])
    )


# zipfile stamps entries with the current time; a fixed one keeps builds of one version
# identical, whichever process builds them and when.
_FIXED_DATE_TIME = (2020, 1, 1, 0, 0, 0)


def zip_files(files: Mapping[str, bytes]) -> bytes:
    """A zip of `files`, every entry stored uncompressed.

    Stored, not deflated: the images and the signature inside are compressed already, so
    deflating would spend CPU on every build to save about a kilobyte of JSON and strings.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            entry = zipfile.ZipInfo(name, date_time=_FIXED_DATE_TIME)
            entry.compress_type = zipfile.ZIP_STORED
            entry.external_attr = 0o644 << 16  # rw-r--r-- when unpacked
            archive.writestr(entry, content)
    return buffer.getvalue()


def sign_package(
    files: Mapping[str, bytes],
    credentials: PassCredentials,
    known_digests: Mapping[str, str] | None = None,
) -> bytes:
    """The .pkpass bytes for `files` (pass.json, images, xx.lproj/...)."""
    manifest = make_manifest(files, known_digests)
    signature = sign_detached(manifest, credentials)
    return zip_files({**files, "manifest.json": manifest, "signature": signature})
