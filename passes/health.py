"""`/healthz` for load balancers and uptime checks."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from flask import Response, current_app
from flask_openapi3 import APIBlueprint
from sqlalchemy.exc import SQLAlchemyError

from models import db
from passes import context, pushing
from passes.openapi import NONE, NUL_IN_QUERY, SERVICE_TAG
from passes.schemas import Health, HealthChecks, json_response

log = logging.getLogger(__name__)

bp = APIBlueprint("health", __name__, abp_tags=[SERVICE_TAG], abp_responses={400: NUL_IN_QUERY})


@bp.get(
    "/healthz",
    operation_id="checkHealth",
    responses={
        200: json_response(Health, "Database reachable and migrated, certificate valid."),
        503: json_response(Health, "Something is wrong; checks say what."),
    },
    security=NONE,
)
def healthz() -> Response:
    """Whether the service can do its job"""
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
    return Health(status="ok" if healthy else "unhealthy", checks=HealthChecks(**checks)).answer(
        200 if healthy else 503
    )


def _script_directory() -> ScriptDirectory:
    config = current_app.extensions["migrate"].migrate.get_config()
    return ScriptDirectory.from_config(config)
