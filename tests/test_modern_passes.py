"""A corpus of passes in Apple's current format must validate and sign without a false word.

tests/modern_passes/ holds pass folders written from Apple's documentation ("Creating a poster
event pass using semantic tags", "Creating an airline boarding pass using semantic tags",
"Creating a poster generic pass", "Defining the metadata of your Wallet Pass", Pass.Barcodes)
and apple/pass-builder's Pass.proto, for the fake certificate of tests/apple_chain.py. Every
key and image in them is one Wallet reads, so any warning here is a false one.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from passes.packages import read_folder
from passes.validation import validate_package
from tests.conftest import Admin
from tests.pkpass_tools import openssl_verify, unzip

CORPUS = Path(__file__).parent / "modern_passes"
FOLDERS = sorted(folder for folder in CORPUS.iterdir() if folder.is_dir())


def zipped(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in read_folder(folder).items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_the_corpus_covers_the_current_format() -> None:
    passes = [json.loads((folder / "pass.json").read_text()) for folder in FOLDERS]
    keys = {key for data in passes for key in data}
    schemes = {scheme for data in passes for scheme in data.get("preferredStyleSchemes", [])}
    formats = {barcode["format"] for data in passes for barcode in data.get("barcodes", [])}
    images = {path.name.split("@")[0].removesuffix(".png") for path in CORPUS.rglob("*.png")}

    assert {"posterGeneric", "featuredActions", "logoSymbolName", "eventLogoText"} <= keys
    assert {"useAutomaticColors", "upgradeURL", "upcomingPassInformation", "stripColor"} <= keys
    assert {"posterEventTicket", "semanticBoardingPass"} <= schemes
    assert {"PKBarcodeFormatEAN13", "PKBarcodeFormatI2of5"} <= formats
    assert {"artwork", "primaryLogo", "secondaryLogo", "venueMap"} <= images


@pytest.mark.parametrize("folder", FOLDERS, ids=[folder.name for folder in FOLDERS])
def test_a_modern_pass_validates_without_a_single_problem(folder: Path) -> None:
    report = validate_package(read_folder(folder))

    problems = [f"{p.path}: {p.message}" for p in report.errors + report.warnings]
    assert problems == []


@pytest.mark.parametrize("folder", FOLDERS, ids=[folder.name for folder in FOLDERS])
def test_a_modern_pass_signs_and_verifies_as_given_and_as_a_served_pass(
    admin: Admin, chain_files: dict[str, Path], tmp_path: Path, folder: Path
) -> None:
    response = admin.post("/api/sign", data=zipped(folder), content_type="application/zip")

    assert response.status_code == 200, response.get_json()
    assert response.headers["X-Pass-Warnings"] == "0"
    files = unzip(response.data)  # the verifier passes it, as Wallet would
    assert openssl_verify(files, chain_files["root"], tmp_path).returncode == 0
    assert files["pass.json"] == (folder / "pass.json").read_bytes()

    stored = admin.post(
        "/api/sign", data=zipped(folder), content_type="application/zip", query_string={"store": 1}
    )
    assert stored.status_code == 200, stored.get_json()
    assert stored.headers["X-Pass-Warnings"] == "0"
    served = json.loads(unzip(stored.data)["pass.json"])
    assert served["webServiceURL"] == "https://passes.example.test/wallet"
