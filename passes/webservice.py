"""Apple's Wallet pass web service: the endpoints iPhones call at the pass's webServiceURL."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any, get_type_hints

import sqlalchemy as sa
from flask import Response, current_app, request
from flask_openapi3 import APIBlueprint
from pydantic import BaseModel, Field
from werkzeug.http import http_date, parse_date

from models import (
    Device,
    DeviceLogEntry,
    Pass,
    Registration,
    UpdateCounter,
    db,
    utcnow,
)
from passes import context, delivery, store, webhooks
from passes.errors import ApiError, NotFound, Unauthorized
from passes.json_body import whole_number
from passes.logtext import escaped
from passes.openapi import APPLE_PASS, DEVICE_TAG, NONE
from passes.schemas import (
    LAST_MODIFIED,
    MAX_DEVICE_BODY,
    NO_CERTIFICATE,
    UNROUTABLE,
    DeviceLog,
    DevicePath,
    Empty,
    Parameters,
    PassPath,
    Personalization,
    PushTokenBody,
    RegistrationPath,
    SerialNumbers,
    SerialsQuery,
    binary,
    challenge,
    error,
    header,
    json_response,
    too_large,
    validate,
)
from passes.signing import PKPASS_MIMETYPE, sign_detached
from passes.tokens import token_matches

log = logging.getLogger(__name__)

bp = APIBlueprint(
    "webservice",
    __name__,
    url_prefix="/wallet",
    abp_tags=[DEVICE_TAG],
)

MAX_LOG_MESSAGE_LENGTH = 2000
KEEP_LOG_ENTRIES = 10_000

UNAUTHORIZED = error(
    "No `ApplePass` token, a wrong one, or no such pass (answered alike, so serial numbers "
    "cannot be probed).",
    challenge("ApplePass"),
)
TOO_LARGE = too_large(f"{MAX_DEVICE_BODY // 1024} KiB")


@bp.before_request
def _small_bodies() -> None:
    # Wallet sends small bodies; anything bigger is not Wallet. Enforced as it is read.
    request.max_content_length = MAX_DEVICE_BODY


def authenticated(*, optional: bool = False) -> Callable[[Callable[..., Any]], Any]:
    """Check the pass's token before the body is read: a 401 comes before any 400 about it.

    The view takes the pass as `pass_` (401 alike for an unknown pass and a bad token).
    `optional`: a request without Authorization goes on, without `pass_`; one with it must
    match. Path parameters are checked first, as for any route (400 at their name); then
    the view's `header` and `body` models, as flask-openapi3 would have before the view.
    """

    def decorate(view: Callable[..., Any]) -> Any:
        models: dict[str, type[BaseModel]] = get_type_hints(view)
        parameters = models["path"]

        @wraps(view)
        def check(**kwargs: Any) -> Any:
            path: Any = validate(parameters, kwargs)
            arguments: dict[str, Any] = {"path": path}
            if not optional or request.headers.get("Authorization"):
                _check_token(path.passTypeIdentifier, path.serialNumber)
            if not optional:
                found = store.find_pass(path.passTypeIdentifier, path.serialNumber)
                if found is None:
                    raise Unauthorized("the authentication token does not match this pass")
                arguments["pass_"] = found
            if "header" in models:
                arguments["header"] = validate(models["header"], dict(request.headers))
            if "body" in models:
                arguments["body"] = validate(models["body"], request.get_json())
            return view(**arguments)

        # What flask_openapi3.validate_request() marks a view with: the route passes the
        # path as it is and leaves validation to the view (here, after the token).
        check.__delay_validate_request__ = True  # type: ignore[attr-defined]
        return check

    return decorate


def _check_token(pass_type_identifier: str, serial_number: str) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "applepass" or not token.strip():
        raise Unauthorized("send Authorization: ApplePass <authenticationToken>")
    # Checking the token before looking the pass up answers unknown passes and wrong
    # tokens in the same way, so serial numbers cannot be probed.
    secret = current_app.config["SECRET_KEY"]
    if not token_matches(secret, pass_type_identifier, serial_number, token.strip()):
        raise Unauthorized("the authentication token does not match this pass")


def _event(type_: str, pass_: Pass, device_id: str | None = None) -> webhooks.Event:
    return webhooks.Event(
        type_,
        pass_type_identifier=pass_.pass_type_identifier,
        serial_number=pass_.serial_number,
        device_library_identifier=device_id,
    )


REGISTRATION = (
    "/v1/devices/<deviceLibraryIdentifier>/registrations/<passTypeIdentifier>/<serialNumber>"
)


@bp.post(
    REGISTRATION,
    operation_id="registerDevice",
    responses={
        201: json_response(Empty, "The device is now registered for the pass."),
        200: json_response(Empty, "The device was already registered for the pass."),
        400: error(
            "A path part is too long, the body is not JSON, or pushToken is not an APNs "
            "device token."
        ),
        404: UNROUTABLE,
        401: UNAUTHORIZED,
        413: TOO_LARGE,
    },
    security=APPLE_PASS,
)
@authenticated()
def register(path: RegistrationPath, body: PushTokenBody, pass_: Pass) -> tuple[Response, int]:
    """Register a device to receive push notifications for a pass"""
    device_id, push_token = path.deviceLibraryIdentifier, body.pushToken
    now = utcnow()
    device_upsert = store.dialect_insert(Device).values(
        device_library_identifier=device_id, push_token=push_token, created_at=now, updated_at=now
    )
    # A device re-registering after a restore comes with a new push token: keep the newest.
    device_upsert = device_upsert.on_conflict_do_update(
        index_elements=[Device.device_library_identifier],
        set_={"push_token": push_token, "updated_at": now},
    ).returning(Device.id)
    device_pk = db.session.execute(device_upsert).scalar_one()
    registration = (
        store.dialect_insert(Registration)
        .values(device_id=device_pk, pass_id=pass_.id, created_at=now)
        .on_conflict_do_nothing(index_elements=["device_id", "pass_id"])
        .returning(Registration.id)
    )
    created = db.session.execute(registration).scalar_one_or_none() is not None
    if created:
        webhooks.emit(db.session, [_event("pass.registered", pass_, device_id)])
        delivery.count_event(delivery.REGISTERED)
    db.session.commit()
    log.info("device registered for a pass (new=%s)", created)
    return Empty().answer(201 if created else 200)


@bp.get(
    "/v1/devices/<deviceLibraryIdentifier>/registrations/<passTypeIdentifier>",
    operation_id="listChangedSerialNumbers",
    responses={
        200: json_response(SerialNumbers, "Passes changed since the tag."),
        204: {"description": "No pass of this type changed for this device."},
        400: error("A path part is too long."),
        404: UNROUTABLE,
    },
    security=NONE,
)
def updated_serials(path: DevicePath, query: SerialsQuery) -> Response:
    """The serial numbers of the device's passes changed since a tag"""
    rows = db.session.execute(
        _DEVICE_PASSES,
        {"device": path.deviceLibraryIdentifier, "pass_type": path.passTypeIdentifier},
    ).all()
    if not rows:
        return Response(status=204)
    # One statement reads one snapshot: every pass it shows has a tag <= the counter it
    # shows (tags are handed out in commit order), so telling the device "lastUpdated =
    # counter" can never skip an update committed around this request.
    last_updated = rows[0].counter
    since = _parse_tag(query.passesUpdatedSince, last_updated)
    changed = [row for row in rows if since is None or row.update_tag > since]
    # On 204 the device keeps the tag it sent.
    given = last_updated if changed else since
    delivery.recorder().listed([row.id for row in rows], [row.id for row in changed], given)
    if not changed:
        return Response(status=204)
    serials = sorted(row.serial_number for row in changed)
    return SerialNumbers(serialNumbers=serials, lastUpdated=str(last_updated)).answer()


_DEVICE_PASSES = (
    sa.select(
        sa.select(UpdateCounter.value)
        .where(UpdateCounter.id == 1)
        .scalar_subquery()
        .label("counter"),
        Pass.serial_number,
        Pass.update_tag,
        Registration.id,
    )
    .join(Registration, Registration.pass_id == Pass.id)
    .join(Device, Device.id == Registration.device_id)
    .where(Device.device_library_identifier == sa.bindparam("device"))
    .where(Pass.pass_type_identifier == sa.bindparam("pass_type"))
)


def _parse_tag(value: str | None, last_updated: int) -> int | None:
    """The tag a device sent, or None to report every pass.

    A tag we could not have issued (not a number, or beyond our counter, as when passes
    moved here from another server that used timestamps) is answered with every pass:
    an extra download is harmless, a pass that never updates again is not.
    """
    tag = whole_number(value)
    return tag if tag is not None and tag <= last_updated else None


class HeldCopy(Parameters):
    if_modified_since: str | None = Field(
        None,
        alias="If-Modified-Since",
        description="The Last-Modified of the copy the device holds.",
    )


LATEST = "/v1/passes/<passTypeIdentifier>/<serialNumber>"
NO_CACHE = {"Cache-Control": header("`no-cache`.")}
# Flask answers HEAD for every GET; Wallet's is documented (passes/openapi.py).
HEAD_OPERATIONS = {
    "/wallet/v1/passes/{passTypeIdentifier}/{serialNumber}": (
        "checkLatestPass",
        "Whether a pass changed, without its content",
    )
}


@bp.get(
    LATEST,
    operation_id="getLatestPass",
    responses={
        200: binary(
            "The signed pass.", PKPASS_MIMETYPE, {"Last-Modified": LAST_MODIFIED, **NO_CACHE}
        ),
        304: {
            "description": "The device has the current version (If-Modified-Since).",
            # Werkzeug drops Last-Modified from a 304, as RFC 9110 allows.
            "headers": NO_CACHE,
        },
        400: error("A path part is too long."),
        404: UNROUTABLE,
        401: UNAUTHORIZED,
        503: NO_CERTIFICATE,
    },
    security=APPLE_PASS,
)
@authenticated()
def latest_pass(path: PassPath, header: HeldCopy, pass_: Pass) -> Response:
    """The latest version of a pass"""
    last_modified = store.last_modified(pass_.updated_at)
    modified = http_date(last_modified)
    if _device_has_current(
        pass_.shares_second_with_previous, last_modified, modified, header.if_modified_since
    ):
        response = Response(status=304)
    else:
        response = Response(_pkpass_or_record_failure(pass_), mimetype=PKPASS_MIMETYPE)
    delivery.recorder().fetched(pass_)
    response.headers["Last-Modified"] = modified
    # Wallet asks again after every push; nothing in between may serve an old copy.
    response.headers["Cache-Control"] = "no-cache"
    return response


def _pkpass_or_record_failure(pass_: Pass) -> bytes:
    """The signed pass; when it cannot be made, the device's record says why first."""
    pass_id = pass_.id
    try:
        return store.committed_pkpass(pass_)
    except Exception as error:
        # The answer is an error either way; a database that fails here too changes nothing.
        reason = error.message if isinstance(error, ApiError) else type(error).__name__
        db.session.rollback()
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            delivery.record_fetch_failure(pass_id, f"server: {reason}", utcnow())
            db.session.commit()
        raise


def _device_has_current(
    shares_second_with_previous: bool,
    last_modified: datetime,
    last_modified_header: str,
    sent: str | None,
) -> bool:
    if shares_second_with_previous:
        # Two versions within one second have the same HTTP date: the device may hold
        # the older one, so it gets the pass again.
        return False
    if sent == last_modified_header:
        return True  # Wallet sends back our own Last-Modified: no need to parse it
    since = parse_date(sent)
    return since is not None and since.astimezone(UTC) >= last_modified


@bp.post(
    "/v1/passes/<passTypeIdentifier>/<serialNumber>/personalize",
    operation_id="personalizePass",
    description=(
        "Apple lists no Authorization header for this request. When one is sent it must "
        "match; without one, only a pass that offers enrollment and is not yet personalized "
        "can be personalized, once, so nothing else can be changed through here. Only "
        "tokens that cannot be read as a JSON object or array are signed."
    ),
    responses={
        200: binary(
            "The detached PKCS #7 signature of personalizationToken.", "application/octet-stream"
        ),
        400: error("A path part is too long, or the body is malformed."),
        401: UNAUTHORIZED,
        404: error(
            "No such pass, it does not offer rewards enrollment, or it is already "
            "personalized: one answer for all three."
        ),
        413: TOO_LARGE,
        503: NO_CERTIFICATE,
    },
    security=[*APPLE_PASS, {}],
)
@authenticated(optional=True)
def personalize(path: PassPath, body: Personalization) -> Response:
    """Rewards enrollment: store the user's details, sign the personalization token"""
    # The body is checked before the pass is looked up: 400 for any pass.
    token = body.personalizationToken
    info = body.requiredPersonalizationInfo.model_dump(exclude_unset=True)
    pass_ = store.find_pass(path.passTypeIdentifier, path.serialNumber)
    # Unknown, without enrollment, or already personalized (a moment ago, perhaps, by a
    # request racing this one): one answer for all, so serial numbers cannot be probed.
    if pass_ is None or not store.is_personalizable(pass_) or not store.personalize(pass_, info):
        raise NotFound("no pass here can be personalized")
    # Signed before the commit: if signing fails, nothing is kept and Wallet can try again.
    signature = sign_detached(token.encode(), context.credentials(pass_.pass_type_identifier))
    webhooks.emit(db.session, [_event("pass.personalized", pass_)])
    db.session.commit()
    log.info("pass personalized (rewards enrollment)")  # the info itself is personal data
    return Response(signature, mimetype="application/octet-stream")


@bp.delete(
    REGISTRATION,
    operation_id="unregisterDevice",
    responses={
        200: json_response(Empty, "Not registered (any more)."),
        400: error("A path part is too long."),
        404: UNROUTABLE,
        401: UNAUTHORIZED,
    },
    security=APPLE_PASS,
)
@authenticated()
def unregister(path: RegistrationPath, pass_: Pass) -> Response:
    """Unregister a device from a pass"""
    device_id = path.deviceLibraryIdentifier
    # A device with no registration left is forgotten, but a registration for another pass
    # may be committing at this moment. The device row's lock orders the two: register's
    # upsert holds it until commit, and so does FOR UPDATE here (PostgreSQL). If register
    # went first, we wait and the NOT EXISTS below, run after the wait, sees its
    # registration. If we went first, register's upsert waits; once we have deleted the
    # device it finds no row to update and inserts a new one. SQLite runs one writing
    # transaction at a time, so the delete and its NOT EXISTS see one state there too.
    device_pk = db.session.scalar(
        sa.select(Device.id).where(Device.device_library_identifier == device_id).with_for_update()
    )
    if device_pk is not None:
        unregistered = db.session.execute(
            sa.delete(Registration).where(
                Registration.device_id == device_pk, Registration.pass_id == pass_.id
            )
        ).rowcount
        if unregistered:
            webhooks.emit(db.session, [_event("pass.unregistered", pass_, device_id)])
        delivery.count_event(delivery.UNREGISTERED, unregistered)
        # Its pending push goes with it (ON DELETE CASCADE).
        db.session.execute(
            sa.delete(Device).where(
                Device.id == device_pk,
                ~sa.exists().where(Registration.device_id == device_pk),
            )
        )
    db.session.commit()
    return Empty().answer()


@bp.post(
    "/v1/log",
    operation_id="logDeviceMessages",
    responses={
        200: json_response(Empty, "Recorded (see GET /api/logs)."),
        400: error("logs is not a list of strings, or has too many."),
        413: TOO_LARGE,
    },
    security=NONE,
)
def device_log(body: DeviceLog) -> Response:
    """Log messages from Wallet about problems with this service"""
    logs = body.logs
    now = utcnow()
    entries = [
        {"message": message.replace("\x00", "")[:MAX_LOG_MESSAGE_LENGTH], "created_at": now}
        for message in logs
        if message
    ]
    if entries:
        db.session.execute(sa.insert(DeviceLogEntry), entries)
        delivery.record_wallet_log((entry["message"] for entry in entries), now)
        _prune_log()
        db.session.commit()
        for entry in entries:
            # Wallet's messages can quote URLs but never carry our secrets; keep them short,
            # and on one line: anyone can post here, and must not write lines of their own.
            log.info("wallet log: %s", escaped(entry["message"][:300]))
    return Empty().answer()


def _prune_log() -> None:
    newest = db.session.scalar(sa.select(sa.func.max(DeviceLogEntry.id))) or 0
    db.session.execute(
        sa.delete(DeviceLogEntry).where(DeviceLogEntry.id <= newest - KEEP_LOG_ENTRIES)
    )
