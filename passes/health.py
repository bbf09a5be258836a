"""`/healthz` for load balancers and uptime checks."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy.exc import SQLAlchemyError

from models import db
from passes import context, pushing

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


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
