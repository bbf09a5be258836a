"""Apple's Wallet pass web service: the endpoints iPhones call at the pass's webServiceURL."""

from __future__ import annotations

import contextlib
import logging
import re
from datetime import UTC, datetime

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.http import http_date, parse_date

from models import (
    DEVICE_ID_LENGTH,
    PASS_TYPE_ID_LENGTH,
    SERIAL_NUMBER_LENGTH,
    Device,
    DeviceLogEntry,
    Pass,
    Registration,
    UpdateCounter,
    db,
    utcnow,
)
from passes import context, delivery, store, webhooks
from passes.apns import is_valid_token
from passes.errors import ApiError, NotFound, Unauthorized, ValidationError
from passes.json_body import json_body, whole_number
from passes.logtext import escaped
from passes.signing import PKPASS_MIMETYPE, sign_detached
from passes.tokens import token_matches

log = logging.getLogger(__name__)

bp = Blueprint("webservice", __name__)

# Wallet sends small bodies; anything bigger is not Wallet.
MAX_BODY = 16 * 1024
MAX_LOG_MESSAGES = 100
MAX_LOG_MESSAGE_LENGTH = 2000
KEEP_LOG_ENTRIES = 10_000


def _check_lengths(**parts: str) -> None:
    limits = {
        "deviceLibraryIdentifier": DEVICE_ID_LENGTH,
        "passTypeIdentifier": PASS_TYPE_ID_LENGTH,
        "serialNumber": SERIAL_NUMBER_LENGTH,
    }
    for name, value in parts.items():
        if len(value) > limits[name]:
            raise ValidationError(f"{name} is longer than {limits[name]} characters", path=name)
        if "\x00" in value:  # PostgreSQL text cannot hold NUL
            raise ValidationError(f"{name} contains a NUL character", path=name)


def _authorized_pass(pass_type_identifier: str, serial_number: str) -> Pass:
    """The pass, if the request carries its token; 401 alike for unknown pass and bad token."""
    _check_token(pass_type_identifier, serial_number)
    found = store.find_pass(pass_type_identifier, serial_number)
    if found is None:
        raise Unauthorized("the authentication token does not match this pass")
    return found


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


REGISTRATION = "/v1/devices/<device_id>/registrations/<pass_type_id>/<serial_number>"


@bp.post(REGISTRATION)
def register(device_id: str, pass_type_id: str, serial_number: str) -> tuple[Response, int]:
    _check_lengths(
        deviceLibraryIdentifier=device_id,
        passTypeIdentifier=pass_type_id,
        serialNumber=serial_number,
    )
    pass_ = _authorized_pass(pass_type_id, serial_number)
    body = json_body(MAX_BODY)
    push_token = body.get("pushToken")
    if not isinstance(push_token, str) or not is_valid_token(push_token):
        raise ValidationError(
            "pushToken must be an APNs device token: 16 to 200 hex characters",
            path="$.pushToken",
        )
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
    return jsonify({}), 201 if created else 200


@bp.get("/v1/devices/<device_id>/registrations/<pass_type_id>")
def updated_serials(device_id: str, pass_type_id: str) -> Response:
    """The serial numbers of this device's passes changed since the tag it holds."""
    _check_lengths(deviceLibraryIdentifier=device_id, passTypeIdentifier=pass_type_id)
    rows = db.session.execute(
        _DEVICE_PASSES, {"device": device_id, "pass_type": pass_type_id}
    ).all()
    if not rows:
        return Response(status=204)
    # One statement reads one snapshot: every pass it shows has a tag <= the counter it
    # shows (tags are handed out in commit order), so telling the device "lastUpdated =
    # counter" can never skip an update committed around this request.
    last_updated = rows[0].counter
    since = _parse_tag(request.args.get("passesUpdatedSince"), last_updated)
    changed = [row for row in rows if since is None or row.update_tag > since]
    # On 204 the device keeps the tag it sent.
    given = last_updated if changed else since
    delivery.record_list([row.id for row in rows], [row.id for row in changed], given, utcnow())
    db.session.commit()
    if not changed:
        return Response(status=204)
    serials = sorted(row.serial_number for row in changed)
    return jsonify({"serialNumbers": serials, "lastUpdated": str(last_updated)})


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


@bp.route("/v1/passes/<pass_type_id>/<serial_number>", methods=["GET", "HEAD"])
def latest_pass(pass_type_id: str, serial_number: str) -> Response:
    _check_lengths(passTypeIdentifier=pass_type_id, serialNumber=serial_number)
    _check_token(pass_type_id, serial_number)
    pass_ = store.find_pass(pass_type_id, serial_number)
    if pass_ is None:
        raise Unauthorized("the authentication token does not match this pass")
    last_modified = store.last_modified(pass_.updated_at)
    header = http_date(last_modified)
    if _device_has_current(pass_.shares_second_with_previous, last_modified, header):
        response = Response(status=304)
    else:
        response = Response(_pkpass_or_record_failure(pass_), mimetype=PKPASS_MIMETYPE)
    delivery.record_fetch(pass_, utcnow())
    db.session.commit()
    response.headers["Last-Modified"] = header
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
    shares_second_with_previous: bool, last_modified: datetime, last_modified_header: str
) -> bool:
    if shares_second_with_previous:
        # Two versions within one second have the same HTTP date: the device may hold
        # the older one, so it gets the pass again.
        return False
    sent = request.headers.get("If-Modified-Since")
    if sent == last_modified_header:
        return True  # Wallet sends back our own Last-Modified: no need to parse it
    since = parse_date(sent)
    return since is not None and since.astimezone(UTC) >= last_modified


# The fields Wallet's sign-up form can ask for (Apple's PersonalizationDictionary).
PERSONALIZATION_KEYS = {
    "emailAddress",
    "familyName",
    "fullName",
    "givenName",
    "ISOCountryCode",
    "phoneNumber",
    "postalCode",
}
MAX_PERSONALIZATION_VALUE = 256
MAX_PERSONALIZATION_TOKEN = 512
# What we sign with the pass certificate. Apple documents the token only as "The
# personalization token for this request. The server must sign and return the token."
# (PersonalizationDictionary), to be signed with the pass certificate and checked by Wallet
# (Wallet Developer Guide, "Rewards Enrollment"): no alphabet, no length. The danger is the
# signature itself: Wallet trusts a detached signature made with this certificate over a
# manifest.json, which is a JSON object, so anything that could be read as JSON text that
# is an object or array must never be signed. Hence printable ASCII without spaces, not
# starting with "{" or "[": every JSON object or array starts with one of them, after
# optional whitespace or a byte order mark, neither of which is allowed here; there is no
# NUL, so the bytes cannot be JSON in UTF-16 or UTF-32 either; and ASCII is its own UTF-8,
# so the bytes signed are exactly the characters checked. An opaque token (hex, base64, a
# UUID) fits in this with room to spare; should Wallet ever send something else, the 400s
# show in the request log (endpoint=webservice.personalize status=400).
PERSONALIZATION_TOKEN = re.compile(rf"^(?![{{\[])[!-~]{{1,{MAX_PERSONALIZATION_TOKEN}}}$")


@bp.post("/v1/passes/<pass_type_id>/<serial_number>/personalize")
def personalize(pass_type_id: str, serial_number: str) -> Response:
    """Rewards enrollment: store the user's info, answer the signed personalization token.

    Apple's documentation lists no Authorization header for this request. When Wallet
    sends one, it must match; without it, only a pass that offers enrollment and is not
    yet personalized can be personalized, once, so nothing else can be changed through here.
    """
    _check_lengths(passTypeIdentifier=pass_type_id, serialNumber=serial_number)
    if request.headers.get("Authorization"):
        _check_token(pass_type_id, serial_number)
    token, info = _personalization_body()  # before the pass is looked up: 400 for any pass
    pass_ = store.find_pass(pass_type_id, serial_number)
    # Unknown, without enrollment, or already personalized (a moment ago, perhaps, by a
    # request racing this one): one answer for all, so serial numbers cannot be probed.
    if pass_ is None or not store.is_personalizable(pass_) or not store.personalize(pass_, info):
        raise NotFound("no pass here can be personalized")
    # Signed before the commit: if signing fails, nothing is kept and Wallet can try again.
    signature = sign_detached(token.encode(), context.credentials())
    webhooks.emit(db.session, [_event("pass.personalized", pass_)])
    db.session.commit()
    log.info("pass personalized (rewards enrollment)")  # the info itself is personal data
    return Response(signature, mimetype="application/octet-stream")


def _personalization_body() -> tuple[str, dict[str, str]]:
    """The token to sign and the user's info, from Apple's PersonalizationDictionary."""
    body = json_body(MAX_BODY)
    token = body.get("personalizationToken")
    if not isinstance(token, str) or not PERSONALIZATION_TOKEN.fullmatch(token):
        raise ValidationError(
            f"personalizationToken must be 1 to {MAX_PERSONALIZATION_TOKEN} printable ASCII "
            "characters without spaces, not starting with { or [",
            path="$.personalizationToken",
        )
    info = body.get("requiredPersonalizationInfo")
    if (
        not isinstance(info, dict)
        or not set(info) <= PERSONALIZATION_KEYS
        or not all(
            isinstance(v, str) and len(v) <= MAX_PERSONALIZATION_VALUE for v in info.values()
        )
    ):
        raise ValidationError(
            "requiredPersonalizationInfo must map "
            + ", ".join(sorted(PERSONALIZATION_KEYS))
            + f" to strings of at most {MAX_PERSONALIZATION_VALUE} characters",
            path="$.requiredPersonalizationInfo",
        )
    return token, info


@bp.delete(REGISTRATION)
def unregister(device_id: str, pass_type_id: str, serial_number: str) -> Response:
    _check_lengths(
        deviceLibraryIdentifier=device_id,
        passTypeIdentifier=pass_type_id,
        serialNumber=serial_number,
    )
    pass_ = _authorized_pass(pass_type_id, serial_number)
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
    return jsonify({})


@bp.post("/v1/log")
def device_log() -> Response:
    body = json_body(MAX_BODY)
    logs = body.get("logs")
    if not isinstance(logs, list) or not all(isinstance(entry, str) for entry in logs):
        raise ValidationError("logs must be a list of strings", path="$.logs")
    if len(logs) > MAX_LOG_MESSAGES:
        raise ValidationError(f"at most {MAX_LOG_MESSAGES} messages per request", path="$.logs")
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
    return jsonify({})


def _prune_log() -> None:
    newest = db.session.scalar(sa.select(sa.func.max(DeviceLogEntry.id))) or 0
    db.session.execute(
        sa.delete(DeviceLogEntry).where(DeviceLogEntry.id <= newest - KEEP_LOG_ENTRIES)
    )
