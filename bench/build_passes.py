"""Passes built and signed per second on one core, beside `openssl speed rsa2048`.

Run from anywhere: `python bench/build_passes.py [--rounds 5] [--seconds 3] [--profile]`.

The process pins itself to core 0 and runs `taskset -c 0 openssl speed` on the same core,
round after round, so both figures see the same machine load. Each round measures:

- openssl: `openssl speed -seconds N rsa2048`, RSA-2048 sign/s (the system's openssl CLI);
- build: `passes.store.build_pkpass(pass_)` on a stored Pass row, the call the GET pass
  endpoint makes (template merge, pass.json, manifest, PKCS#7 signature, zip);
- endpoint: `GET /wallet/v1/passes/...` through Flask's test client without If-Modified-Since
  (token check, row lookup, files lazy-load, build, response), i.e. the whole view;
- rsa: a bare RSA-2048 PKCS#1 v1.5 sign through `cryptography` (its bundled OpenSSL), to
  tell library speed from our code's overhead.

The figure the goal is about is build / openssl (goal: at least 0.60).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/x.py` puts bench/, not the repo, on the path

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402
from flask import Flask  # noqa: E402

GOAL = 0.60
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


def write_chain(folder: Path) -> dict[str, Path]:
    """A fake Apple chain (RSA-2048 pass key) written as a .p12 and PEMs."""
    from tests.apple_chain import make_chain

    return make_chain().write(folder, password=P12_PASSWORD.encode())


def app_environment(
    chain: dict[str, Path], database_url: str, log_level: str = "INFO"
) -> dict[str, str]:
    """The environment variables a production start would use (pushes off: none are due)."""
    return {
        "SECRET_KEY": SECRET_KEY,
        "PUBLIC_URL": PUBLIC_URL,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "DATABASE_URL": database_url,
        "PASS_CERTIFICATE": str(chain["pass_p12"]),
        "PASS_CERTIFICATE_PASSWORD": P12_PASSWORD,
        "WWDR_CERTIFICATE": str(chain["wwdr"]),
        "LOG_LEVEL": log_level,
        "PUSH_MODE": "off",
    }


def make_app(environment: dict[str, str]) -> Flask:
    """create_app() under `environment`, with the schema built by the migrations."""
    from flask_migrate import upgrade

    from app import create_app

    os.environ.update(environment)
    app = create_app()
    with app.app_context():
        upgrade()
    return app


def create_passes(app: Flask, serials: list[str]) -> str:
    """Passes of the sample template with PER_PASS_DATA, made through the admin API."""
    client = app.test_client()
    pass_type_identifier = ""
    for serial in serials:
        response = client.post(
            "/api/passes",
            json={"template": "storecard", "serialNumber": serial, "pass": PER_PASS_DATA},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        if response.status_code != 201:
            raise RuntimeError(f"creating {serial}: {response.status_code} {response.get_json()}")
        pass_type_identifier = response.get_json()["passTypeIdentifier"]
    return pass_type_identifier


class Rate(NamedTuple):
    """Calls per second of wall time and per second of this process's CPU time."""

    wall: float
    cpu: float


def rate(work: Callable[[], object], seconds: float) -> Rate:
    """How fast `work` runs over about `seconds` of wall time."""
    work()  # warm caches (template store, statement cache) outside the timed part
    calls = 0
    start, start_cpu = time.perf_counter(), time.process_time()
    deadline = start + seconds
    while True:
        work()
        calls += 1
        now = time.perf_counter()
        if now >= deadline:
            return Rate(calls / (now - start), calls / (time.process_time() - start_cpu))


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


def check_package(pkpass: bytes, chain: dict[str, Path], folder: Path) -> list[str]:
    """The package's file names, after `openssl smime -verify` accepted its signature."""
    with zipfile.ZipFile(io.BytesIO(pkpass)) as archive:
        names = archive.namelist()
        (folder / "manifest.json").write_bytes(archive.read("manifest.json"))
        (folder / "signature").write_bytes(archive.read("signature"))
    subprocess.run(
        [
            "openssl",
            "smime",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-purpose",
            "any",
            "-in",
            str(folder / "signature"),
            "-content",
            str(folder / "manifest.json"),
            "-CAfile",
            str(chain["root"]),
            "-certfile",
            str(chain["wwdr"]),
            "-out",
            os.devnull,
        ],  # fmt: skip
        capture_output=True,
        check=True,
        timeout=30,
    )
    return names


def profile(work: Callable[[], object], calls: int) -> str:
    """The top of a cProfile of `calls` calls, by own time and by cumulative time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        work()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(15)
    stats.sort_stats("cumulative").print_stats(25)
    return out.getvalue()


def stage_breakdown(pass_: Any, seconds: float) -> list[tuple[str, float]]:
    """Milliseconds per call of each step of store.build_pkpass, measured one by one."""
    from passes import context, store
    from passes.signing import make_manifest, sign_detached, zip_files

    credentials = context.credentials()
    files, digests = store._assemble(pass_)
    manifest = make_manifest(files, digests)
    signature = sign_detached(manifest, credentials)
    package = {**files, "manifest.json": manifest, "signature": signature}
    steps: list[tuple[str, Callable[[], object]]] = [
        ("assemble (template merge, pass.json, token)", lambda: store._assemble(pass_)),
        ("make_manifest (SHA-1 of new files, JSON)", lambda: make_manifest(files, digests)),
        ("sign_detached (PKCS#7, RSA-2048)", lambda: sign_detached(manifest, credentials)),
        ("zip_files (11 entries, zipfile, stored)", lambda: zip_files(package)),
        ("build_pkpass (all of the above together)", lambda: store.build_pkpass(pass_)),
    ]
    return [(label, 1000 / rate(work, seconds).cpu) for label, work in steps]


def print_table(medians: dict[str, Rate], labels: dict[str, str]) -> None:
    print("| figure (median of rounds)                 | per s wall | per s CPU | / openssl |")
    print("|-------------------------------------------|-----------:|----------:|----------:|")
    for name, label in labels.items():
        share = medians[name].cpu / medians["openssl"].cpu
        wall, cpu = medians[name]
        print(f"| {label:<41} | {wall:10.1f} | {cpu:9.1f} | {share:9.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3, help="per measurement")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile")
    args = parser.parse_args()

    os.sched_setaffinity(0, {CORE})
    print(machine_description())
    print(f"pinned to core {CORE}; {args.rounds} rounds of {args.seconds} s per figure")
    print(f"openssl command: {shlex.join(openssl_command(args.seconds))}")

    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        folder = Path(tmp)
        chain = write_chain(folder / "chain")
        # WARNING: the request log line of the endpoint figure would flood this output.
        database = f"sqlite:///{folder / 'bench.db'}"
        app = make_app(app_environment(chain, database, log_level="WARNING"))

        from passes import context, store
        from passes.tokens import authentication_token

        serial = "bench-0001"
        pass_type_identifier = create_passes(app, [serial])

        client = app.test_client()
        url = f"/wallet/v1/passes/{pass_type_identifier}/{serial}"
        token = authentication_token(SECRET_KEY, pass_type_identifier, serial)
        headers = {"Authorization": f"ApplePass {token}"}

        def endpoint() -> None:
            response = client.get(url, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"GET {url}: {response.status_code}")

        with app.app_context():
            pass_ = store.get_pass(pass_type_identifier, serial)
            pkpass = store.build_pkpass(pass_)
            names = check_package(pkpass, chain, folder)
            print(f"package: {len(pkpass)} bytes, {len(names)} files, signature verified")
            key = context.credentials().private_key
            with zipfile.ZipFile(io.BytesIO(pkpass)) as archive:
                manifest = archive.read("manifest.json")

            def build() -> None:
                store.build_pkpass(pass_)

            def rsa_sign() -> None:
                key.sign(manifest, padding.PKCS1v15(), hashes.SHA256())

            labels = {
                "openssl": "openssl speed rsa2048, sign/s",
                "rsa": "cryptography RSA-2048 sign (reference)",
                "build": "store.build_pkpass (goal figure)",
                "endpoint": "GET pass view, test client, 200",
            }
            work: dict[str, Callable[[], object]] = {
                "rsa": rsa_sign,
                "build": build,
                "endpoint": endpoint,
            }
            figures: dict[str, list[Rate]] = {name: [] for name in labels}
            for number in range(1, args.rounds + 1):
                figures["openssl"].append(openssl_sign_rate(args.seconds))
                for name, call in work.items():
                    figures[name].append(rate(call, args.seconds))
                line = "  ".join(f"{n} {v[-1].wall:7.1f}/s" for n, v in figures.items())
                print(f"round {number} (wall): {line}")

            medians = {
                name: Rate(
                    statistics.median(r.wall for r in values),
                    statistics.median(r.cpu for r in values),
                )
                for name, values in figures.items()
            }
            wall_ratios = [
                b.wall / o.wall for b, o in zip(figures["build"], figures["openssl"], strict=True)
            ]
            cpu_ratios = [
                b.cpu / o.cpu for b, o in zip(figures["build"], figures["openssl"], strict=True)
            ]
            print()
            print_table(medians, labels)
            print()
            ratio = statistics.median(cpu_ratios)
            verdict = "MET" if ratio >= GOAL else "MISSED"
            print(
                f"build/openssl per CPU second: median {ratio:.2f} "
                f"(rounds {', '.join(f'{r:.2f}' for r in cpu_ratios)}); goal {GOAL:.2f}: {verdict}"
            )
            print(
                f"build/openssl per wall second: median {statistics.median(wall_ratios):.2f} "
                f"(rounds {', '.join(f'{r:.2f}' for r in wall_ratios)})"
            )
            print(
                f"CPU per pass: {1000 / medians['build'].cpu:.3f} ms for build_pkpass, "
                f"{1000 / medians['openssl'].cpu:.3f} ms for one openssl RSA-2048 sign"
            )

            print("\nwhere build_pkpass's time goes (ms of CPU per call, each step alone):")
            try:
                steps = stage_breakdown(pass_, args.seconds)
            except (ImportError, AttributeError) as error:  # the app's internals moved on
                print(f"  unavailable: {error}; update stage_breakdown()")
                steps = []
            for label, milliseconds in steps:
                print(f"  {label:<45} {milliseconds:7.3f} ms")
            if steps:
                print(f"  {'sum of the steps':<45} {sum(ms for _, ms in steps[:-1]):7.3f} ms")

            if args.profile:
                print("\ncProfile of store.build_pkpass, 2000 calls:")
                print(profile(build, 2000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
