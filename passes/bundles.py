"""`.pkpasses` bundles: several signed passes in one download (iOS 15+ adds them all)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from typing import Any

from models import Pass
from passes import store
from passes.errors import ValidationError

PKPASSES_MIMETYPE = "application/vnd.apple.pkpasses"
# Apple documents no limit; a bundle is built in memory and signed pass by pass, so keep
# one request bounded.
MAX_PASSES = 100


def parse_pass_list(value: Any) -> list[tuple[str, str]]:
    """[{"passTypeIdentifier", "serialNumber"}, ...] from a request body."""
    if not isinstance(value, list) or not value:
        raise ValidationError("must be a non-empty list of passes", path="$.passes")
    if len(value) > MAX_PASSES:
        raise ValidationError(f"at most {MAX_PASSES} passes per bundle", path="$.passes")
    keys: list[tuple[str, str]] = []
    for index, item in enumerate(value):
        path = f"$.passes[{index}]"
        if not isinstance(item, dict) or set(item) != {"passTypeIdentifier", "serialNumber"}:
            raise ValidationError("must be {passTypeIdentifier, serialNumber}", path=path)
        if not all(isinstance(v, str) for v in item.values()):
            raise ValidationError("identifiers must be strings", path=path)
        keys.append((item["passTypeIdentifier"], item["serialNumber"]))
    if len(set(keys)) != len(keys):
        raise ValidationError("a pass is listed twice", path="$.passes")
    return keys


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
