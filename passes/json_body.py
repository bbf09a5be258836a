"""Reading JSON request bodies strictly: every malformed body is a 400, never a 500."""

from __future__ import annotations

import json
import math
from typing import Any

from flask import request

from passes.errors import ValidationError
from passes.validation import json_limit_problems, nesting_problem


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as infinity
        raise ValueError(f"{text} is out of range")
    return value


def json_body(max_bytes: int | None = None) -> dict[str, Any]:
    """The request body as a JSON object (413 past `max_bytes` or the app's MAX_CONTENT_LENGTH,
    400 when malformed)."""
    if max_bytes is not None:
        request.max_content_length = max_bytes
    raw = request.get_data(cache=True)  # reading enforces max_content_length
    return json_object(raw)


def json_object(raw: bytes, path: str = "$", what: str = "the body") -> dict[str, Any]:
    """`raw` as a JSON object, read as strictly as request bodies: a ValidationError naming
    `what` at `path` when it is not one. The dashboard reads its JSON fields with it too."""
    try:
        parsed = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite)
        # A lone surrogate (\ud800) parses but can be neither stored nor signed.
        json.dumps(parsed, ensure_ascii=False).encode()
    except (ValueError, UnicodeDecodeError):
        raise ValidationError(
            f"{what} is not valid JSON", path=None if path == "$" else path
        ) from None
    except RecursionError:
        # Deeper than the json module can read: the shape alone says where.
        problem = nesting_problem(raw.decode("utf-8", "replace"), path)
        where = problem.path if problem else path
        raise ValidationError(f"{what} nests too deeply", path=where) from None
    if not isinstance(parsed, dict):
        raise ValidationError(f"{what} must be a JSON object", path=path)
    # Refused here, at their path, rather than stored to break a page or a later change.
    problems = json_limit_problems(parsed, path)
    if problems:
        raise ValidationError(problems[0].message, path=problems[0].path)
    return parsed


def whole_number(value: str | None, max_digits: int = 18) -> int | None:
    """A plain ASCII decimal, or None. str.isdigit() alone accepts "²", which int() refuses;
    18 digits keep every accepted value inside a 64-bit column."""
    if value is None or not value.isascii() or not value.isdigit() or len(value) > max_digits:
        return None
    return int(value)
