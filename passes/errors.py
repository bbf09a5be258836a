"""Expected failures as exceptions with a status, and the JSON error handlers."""

from __future__ import annotations

import logging
import traceback
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from passes.validation import PassInvalid

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A failure the client can act on: answered as JSON with `status`."""

    status = 400
    error = "bad_request"

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.path:
            body["path"] = self.path
        return body


class ValidationError(ApiError):
    status = 400
    error = "invalid_request"


class Unauthorized(ApiError):
    status = 401
    error = "unauthorized"


class Forbidden(ApiError):
    status = 403
    error = "forbidden"


class NotFound(ApiError):
    status = 404
    error = "not_found"


class Conflict(ApiError):
    status = 409
    error = "conflict"


class Gone(ApiError):
    status = 410
    error = "gone"


class ServiceUnavailable(ApiError):
    status = 503
    error = "unavailable"


# Our HTML pages (the dashboard, the front page, error pages) build on nothing outside
# themselves: no scripts, no requests elsewhere, no framing.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}


def _negotiable() -> bool:
    # Wallet's web service protocol is JSON whatever a device sends in Accept.
    web_service = current_app.config.get("WEB_SERVICE_PATH", "/wallet")
    return request.blueprint != "webservice" and not request.path.startswith(web_service + "/")


def prefers_html() -> bool:
    """Whether the client ranks text/html above JSON, as browsers do. API clients, curl
    (*/*, which ranks both the same) and clients that send no Accept get JSON."""
    accept = request.accept_mimetypes
    return _negotiable() and accept["text/html"] > accept["application/json"]


def _json(body: dict[str, Any], status: int, headers: Any = None) -> Response:
    """The error as JSON, or as a page for a browser (the same message, path and problems)."""
    if prefers_html():
        title = HTTP_STATUS_CODES.get(status, "Error")
        html = render_template("pages/error.html", status=status, title=title, body=body)
        response = Response(html, status=status, headers=PAGE_HEADERS)
    else:
        response = jsonify(body)
        response.status_code = status
    if _negotiable():
        response.vary.add("Accept")
    if headers:
        response.headers.extend(headers)
    return response


def register_error_handlers(app: Flask) -> None:
    """Every error leaves as JSON, or as a page when a browser asks (prefers_html());
    unexpected ones reveal nothing but are logged in full."""

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        headers = None
        if isinstance(error, Unauthorized):
            # Devices authenticate with "ApplePass <token>", admins with a bearer token.
            scheme = "ApplePass" if request.blueprint == "webservice" else "Bearer"
            headers = {"WWW-Authenticate": scheme}
        return _json(error.body(), error.status, headers)

    @app.errorhandler(PassInvalid)
    def invalid_pass(error: PassInvalid) -> Response:
        count = len(error.report.errors)
        return _json(
            {
                "error": "invalid_pass",
                "message": f"Wallet would refuse this pass: {count} problem(s), all listed.",
                **error.report.as_dict(),
            },
            422,
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        name = (error.name or "error").lower().replace(" ", "_")
        # Keep headers such as Allow (405) but not the HTML content type.
        headers = [(k, v) for k, v in error.get_headers() if k.lower() not in {"content-type"}]
        return _json(
            {"error": name, "message": error.description or error.name},
            error.code or 500,
            headers,
        )

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> Response:
        if isinstance(error, sa.exc.DBAPIError):
            log_database_error(error)
        else:
            log.exception("unhandled error")
        return _json(
            {"error": "internal_error", "message": "Something went wrong on our side."}, 500
        )


def log_database_error(error: sa.exc.DBAPIError) -> None:
    """Log a database error without the values it was about.

    The engine hides bound parameters (hide_parameters), but PostgreSQL's own message
    quotes values too ("Failing row contains (...)", "invalid input syntax ...: \"...\""),
    and those are push tokens and personal data. Log what locates the fault instead: the
    error class and code, the table, column and constraint, the SQL and where it ran.
    """
    diag = getattr(error.orig, "diag", None)
    where = {
        "table": getattr(diag, "table_name", None),
        "column": getattr(diag, "column_name", None),
        "constraint": getattr(diag, "constraint_name", None),
    }
    log.error(
        "database error %s (code %s, %s)\nSQL: %s\n%s",
        type(error.orig).__name__,
        getattr(error.orig, "pgcode", None) or "-",
        ", ".join(f"{k} {v}" for k, v in where.items() if v) or "no detail",
        error.statement,
        "".join(traceback.format_tb(error.__traceback__)).rstrip(),
    )
