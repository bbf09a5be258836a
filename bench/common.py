"""What the benchmarks share: the service's test settings, the per-pass data of a loyalty card,
the machine description, and openssl's RSA-2048 sign rate (the baseline for signing)."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

CORE = 0
SECRET_KEY = "bench-secret-key-that-is-long-enough"
ADMIN_TOKEN = "bench-admin-token-of-24-characters"
PUBLIC_URL = "https://passes.example.test"
P12_PASSWORD = "bench-p12-password"

# The per-pass part of a loyalty card: who holds it, their points and balance, their barcode.
# Arrays replace the template's (RFC 7396), so each field list is given whole, as an issuer
# filling a store card would.
PER_PASS_DATA: dict[str, Any] = {
    "storeCard": {
        "headerFields": [
            {"key": "points", "label": "POINTS", "value": 1280, "changeMessage": "points_changed"}
        ],
        "primaryFields": [
            {
                "key": "balance",
                "label": "BALANCE",
                "value": 12.5,
                "currencyCode": "USD",
                "changeMessage": "balance_changed",
            }
        ],
        "secondaryFields": [{"key": "member", "label": "MEMBER", "value": "Ada Lovelace"}],
        "auxiliaryFields": [{"key": "level", "label": "LEVEL", "value": "level_gold"}],
        "backFields": [{"key": "terms", "label": "TERMS", "value": "terms_text"}],
    },
    "barcodes": [
        {
            "format": "PKBarcodeFormatQR",
            "message": "member-004217",
            "messageEncoding": "iso-8859-1",
            "altText": "004217",
        }
    ],
    "expirationDate": "2030-01-01T00:00:00Z",
}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, for the benchmarks' machine lines."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine_description() -> str:
    """nproc, CPU model, Python and OpenSSL versions, as one block of lines."""
    model = cpu_model()
    from cryptography.hazmat.backends.openssl.backend import backend

    openssl_cli = subprocess.run(
        ["openssl", "version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return "\n".join(
        [
            f"nproc: {os.cpu_count()}  CPU: {model}",
            f"Python {platform.python_version()} on {platform.platform()}",
            f"openssl CLI: {openssl_cli}",
            f"cryptography's OpenSSL: {backend.openssl_version_text()}",
        ]
    )


class Rate(NamedTuple):
    """Calls per second of wall time and per second of this process's CPU time."""

    wall: float
    cpu: float


# "Doing 2048 bits private rsa's for 3s: 9120 2048 bits private RSA's in 2.99s": the run lasts
# N s of wall time (an alarm), and the "in" figure is user CPU time, openssl's own divisor.
OPENSSL_SIGN = re.compile(r"private rsa's for (\d+)s: (\d+) 2048 bits private RSA's in ([\d.]+)s")


def openssl_command(seconds: int) -> list[str]:
    return ["taskset", "-c", str(CORE), "openssl", "speed", "-seconds", str(seconds), "rsa2048"]


def openssl_sign_rate(seconds: int) -> Rate:
    """RSA-2048 sign/s from `openssl speed` on the benchmark core."""
    result = subprocess.run(
        openssl_command(seconds),
        capture_output=True,
        text=True,
        timeout=4 * seconds + 60,  # it signs for N s, then verifies for N s
        check=True,
    )
    match = OPENSSL_SIGN.search(result.stdout + result.stderr)
    if match is None:
        raise RuntimeError(f"cannot read openssl speed output:\n{result.stdout}")
    wall, count, cpu = float(match.group(1)), int(match.group(2)), float(match.group(3))
    return Rate(count / wall, count / cpu)
