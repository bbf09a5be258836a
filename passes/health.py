"""`/healthz` for load balancers and uptime checks, and one log line per request."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy.exc import SQLAlchemyError

from models import db
from passes import context, metrics, pushing
from passes.logtext import escaped

log = logging.getLogger("passes.requests")

bp = Blueprint("health", __name__)

REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """200 when the service can do its job, 503 with the reason otherwise."""
    checks: dict[str, Any] = {}
    healthy = True
    try:
        with db.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            # Read directly: MigrationContext would log two lines at every health check.
            current = set(
                connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
            )
        checks["database"] = "ok"
        heads = set(_script_directory().get_heads())
        checks["migrations"] = (
            "at head" if current == heads else "not at head: run flask db upgrade"
        )
        healthy &= current == heads
        checks["pushBacklog"] = pushing.pending_count()
    except SQLAlchemyError as error:
        log.warning("health check: database unreachable (%s)", type(error).__name__)
        checks["database"] = "unreachable"
        healthy = False
    credentials = context.runtime().credentials
    if credentials is None:
        checks["certificate"] = "not configured: set PASS_CERTIFICATE and WWDR_CERTIFICATE"
        healthy = False
    else:
        days = (credentials.expires_at - datetime.now(UTC)).days
        checks["certificate"] = {
            "passTypeIdentifier": credentials.pass_type_identifier,
            "expiresAt": credentials.expires_at.isoformat(),
            "daysToExpiry": days,
        }
        healthy &= days >= 0
    return jsonify({"status": "ok" if healthy else "unhealthy", "checks": checks}), (
        200 if healthy else 503
    )


def _script_directory() -> ScriptDirectory:
    config = current_app.extensions["migrate"].migrate.get_config()
    return ScriptDirectory.from_config(config)


class RequestLog:
    """WSGI middleware: one line per request (id, method, endpoint, status, duration), counted
    in the metrics, and the request id in an X-Request-Id header. Never paths (distribution
    links carry tokens), headers or bodies.

    Middleware rather than Flask hooks: on the device endpoints, the hot path, two hooks and
    their `g` lookups cost a tenth of the request (measured with bench/http_paths.py, removed
    in 0400a08).
    """

    def __init__(self, wsgi_app: Callable[..., Any]) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        started = time.perf_counter()
        offered = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = offered if REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex[:16]
        status = endpoint = "-"

        def start(status_line: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            nonlocal status, endpoint
            status = status_line.partition(" ")[0]
            # Flask calls this while its request, which Werkzeug keeps in the environ until
            # the request ends, still knows the route it matched.
            rule = getattr(environ.get("werkzeug.request"), "url_rule", None)
            endpoint = rule.endpoint if rule is not None else "-"
            headers.append(("X-Request-Id", request_id))
            return start_response(status_line, headers, *exc_info)

        body = self.wsgi_app(environ, start)  # Flask has called start() when it returns
        seconds = time.perf_counter() - started
        log.info(
            "request id=%s method=%s endpoint=%s status=%s duration_ms=%.1f",
            request_id,
            escaped(environ.get("REQUEST_METHOD", "-")),  # the client's, whatever it sent
            endpoint,
            status,
            seconds * 1000,
        )
        metrics.observe_request(endpoint, status, seconds)
        return body
