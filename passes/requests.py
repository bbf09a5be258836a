"""Reading requests strictly: every malformed body is a 400, never a 500."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
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
    try:
        parsed = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite)
        # A lone surrogate (\ud800) parses but can be neither stored nor signed.
        json.dumps(parsed, ensure_ascii=False).encode()
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("the body is not valid JSON") from None
    except RecursionError:
        # Deeper than the json module can read: the shape alone says where.
        problem = nesting_problem(raw.decode("utf-8", "replace"))
        path = problem.path if problem else "$"
        raise ValidationError("the body nests too deeply", path=path) from None
    if not isinstance(parsed, dict):
        raise ValidationError("the body must be a JSON object", path="$")
    # Refused here, at their path, rather than stored to break a page or a later change.
    problems = json_limit_problems(parsed)
    if problems:
        raise ValidationError(problems[0].message, path=problems[0].path)
    return parsed


def whole_number(value: str | None, max_digits: int = 18) -> int | None:
    """A plain ASCII decimal, or None. str.isdigit() alone accepts "²", which int() refuses;
    18 digits keep every accepted value inside a 64-bit column."""
    if value is None or not value.isascii() or not value.isdigit() or len(value) > max_digits:
        return None
    return int(value)


class RefuseNul:
    """WSGI middleware: a NUL in the path or the query string is refused before any view.

    No pass, device or page has a NUL in its name, and PostgreSQL refuses NUL in text, so a
    view passing one to a query would answer 500. One check here covers every route: a path
    is a 404 (nothing is called that), a query a 400. The path arrives percent-decoded; the
    query string as sent, where a NUL is "%00".
    """

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.wsgi_app = wsgi_app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if "\x00" in environ.get("PATH_INFO", ""):
            return _json_error(start_response, "404 NOT FOUND", "not_found", "No such resource.")
        query = environ.get("QUERY_STRING", "")
        if "%00" in query or "\x00" in query:
            return _json_error(
                start_response,
                "400 BAD REQUEST",
                "bad_request",
                "The query string holds a NUL character (%00).",
            )
        return self.wsgi_app(environ, start_response)


def _json_error(
    start_response: Callable[..., Any], status: str, error: str, message: str
) -> list[bytes]:
    # The shape of every other error (passes/errors.py), without entering Flask.
    body = json.dumps({"error": error, "message": message}).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
