"""Reading .pkpass files in tests, and checking their signatures with the real openssl."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path
from typing import Any

from passes.verify import verify_pkpass


def unzip(pkpass: bytes) -> dict[str, bytes]:
    """The files of a pass the service built, after the verifier has passed it: every pass
    a test looks at is checked the way Wallet would check it."""
    report = verify_pkpass(pkpass)
    assert report.ok, report.render()
    with zipfile.ZipFile(io.BytesIO(pkpass)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def pass_json(pkpass: bytes) -> dict[str, Any]:
    return json.loads(unzip(pkpass)["pass.json"])


def openssl_verify(
    files: dict[str, bytes], root: Path, folder: Path
) -> subprocess.CompletedProcess[str]:
    """`openssl smime -verify` of the signature over manifest.json, as Apple documents."""
    return openssl_verify_detached(files["manifest.json"], files["signature"], root, folder)


def openssl_verify_detached(
    content: bytes, signature: bytes, root: Path, folder: Path
) -> subprocess.CompletedProcess[str]:
    """Check a detached DER PKCS#7 signature over `content` with the real openssl."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "content").write_bytes(content)
    (folder / "signature").write_bytes(signature)
    # fmt: off
    command = [
        "openssl", "smime", "-verify", "-inform", "DER", "-binary",
        "-content", str(folder / "content"), "-in", str(folder / "signature"),
        "-CAfile", str(root), "-purpose", "any", "-out", "/dev/null",
    ]
    # fmt: on
    return subprocess.run(command, capture_output=True, text=True, check=False)


def png_with_text(png: bytes, text: bytes) -> bytes:
    """The same image with a tEXt chunk after its header: other bytes, still a valid PNG."""
    chunk = b"tEXt" + b"Comment\x00" + text
    header_end = 8 + 4 + 4 + 13 + 4  # signature, then IHDR's length, type, data and CRC
    packed = struct.pack(">I", len(chunk) - 4) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return png[:header_end] + packed + png[header_end:]
