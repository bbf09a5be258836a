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
from passes.credentials import Certificates
from passes.openapi import NONE, NUL_IN_QUERY, SERVICE_TAG
from passes.schemas import CertificateInfo, Health, HealthChecks, json_response

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
    listed = certificate_list(context.runtime().certificates, datetime.now(UTC))
    if not listed:
        checks["certificates"] = "not configured: set PASS_CERTIFICATE and WWDR_CERTIFICATE"
        healthy = False
    else:
        checks["certificates"] = listed
        # An old certificate beside its renewal may expire; the one in use may not.
        healthy &= all(info.daysToExpiry >= 0 for info in listed if info.inUse)
    return Health(status="ok" if healthy else "unhealthy", checks=HealthChecks(**checks)).answer(
        200 if healthy else 503
    )


def certificate_list(certificates: Certificates, now: datetime) -> list[CertificateInfo]:
    """Every configured certificate, as /healthz and the dashboard list them."""
    return [
        CertificateInfo(
            setting=credentials.variable,
            passTypeIdentifier=credentials.pass_type_identifier,
            teamIdentifier=credentials.team_identifier,
            inUse=certificates.is_used(credentials),
            expiresAt=credentials.expires_at.isoformat(),
            daysToExpiry=credentials.days_to_expiry(now),
        )
        for credentials in certificates.all
    ]


def _script_directory() -> ScriptDirectory:
    config = current_app.extensions["migrate"].migrate.get_config()
    return ScriptDirectory.from_config(config)
