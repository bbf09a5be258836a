"""Reading request bodies strictly: every malformed body is a 400, never a 500."""

from __future__ import annotations

import json
from typing import Any

from flask import request

from passes.errors import ValidationError


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_body() -> dict[str, Any]:
    """The request body as a JSON object (413 past the size limit, 400 when malformed)."""
    raw = request.get_data(cache=True)  # reading enforces max_content_length
    try:
        parsed = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("the body is not valid JSON") from None
    except RecursionError:
        raise ValidationError("the body nests too deeply") from None
    if not isinstance(parsed, dict):
        raise ValidationError("the body must be a JSON object", path="$")
    return parsed
