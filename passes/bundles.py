"""`.pkpasses` bundles: several signed passes in one download (iOS 15+ adds them all)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from typing import Any

from models import Pass
from passes import store
from passes.schemas import BundleRequest, validate

PKPASSES_MIMETYPE = "application/vnd.apple.pkpasses"


def parse_pass_list(value: Any) -> list[tuple[str, str]]:
    """[{"passTypeIdentifier", "serialNumber"}, ...] as the API's bundle request takes it."""
    request = validate(BundleRequest, {"passes": value})
    return [(key.passTypeIdentifier, key.serialNumber) for key in request.passes]


def build_bundle(passes: Sequence[Pass]) -> bytes:
    """A zip of signed .pkpass files, named after their serial numbers."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for index, pass_ in enumerate(passes):
            # Serial numbers are path-safe (store.SERIAL_NUMBER); the index keeps two
            # passes of different types with one serial apart.
            archive.writestr(
                f"{index + 1:03d}-{pass_.serial_number}.pkpass", store.build_pkpass(pass_)
            )
    return buffer.getvalue()
