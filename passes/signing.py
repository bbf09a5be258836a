"""Turning a set of pass files into a signed .pkpass: manifest, signature, zip."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
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


# A fixed timestamp (2020-01-01 00:00, in DOS format) keeps builds of one version identical.
_DOS_DATE = (2020 - 1980) << 9 | 1 << 5 | 1
_DOS_TIME = 0
_UTF8_NAMES = 0x0800
_UNIX_FILE = 0o100644 << 16


def zip_files(files: Mapping[str, bytes]) -> bytes:
    """A zip of `files`, every entry stored uncompressed.

    Written directly (PKWARE APPNOTE 4.3.7, 4.3.12, 4.3.16) because zipfile's per-entry
    machinery cost more than the RSA signature; the images inside are already compressed,
    so storing costs a few kilobytes at most. Wallet reads stored entries like any other.
    """
    local_parts: list[bytes] = []
    central_parts: list[bytes] = []
    offset = 0
    for name, content in files.items():
        encoded = name.encode()
        crc = zlib.crc32(content)
        size = len(content)
        local = struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, _UTF8_NAMES, 0, _DOS_TIME, _DOS_DATE,
            crc, size, size, len(encoded), 0,
        )  # fmt: skip
        central_parts.append(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                3 << 8 | 20,
                20,
                _UTF8_NAMES,
                0,
                _DOS_TIME,
                _DOS_DATE,
                crc,
                size,
                size,
                len(encoded),
                0,
                0,
                0,
                0,
                _UNIX_FILE,
                offset,
            )  # fmt: skip
            + encoded
        )
        local_parts += (local, encoded, content)
        offset += len(local) + len(encoded) + size
    central = b"".join(central_parts)
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(files), len(files), len(central), offset, 0
    )
    return b"".join(local_parts) + central + end


def sign_package(
    files: Mapping[str, bytes],
    credentials: PassCredentials,
    known_digests: Mapping[str, str] | None = None,
) -> bytes:
    """The .pkpass bytes for `files` (pass.json, images, xx.lproj/...)."""
    manifest = make_manifest(files, known_digests)
    signature = sign_detached(manifest, credentials)
    return zip_files({**files, "manifest.json": manifest, "signature": signature})
