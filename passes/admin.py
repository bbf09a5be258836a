"""The admin JSON API: create, change, inspect and download passes."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.http import http_date

from models import DeviceLogEntry, Pass, Registration, db, utcnow
from passes import bundles, context, links, packages, store
from passes.building import INJECTED_KEYS
from passes.errors import Forbidden, NotFound, Unauthorized, ValidationError
from passes.json_body import json_body, whole_number
from passes.signing import PKPASS_MIMETYPE
from passes.tokens import bearer_matches
from passes.validation import Report, parse_w3c_datetime

bp = Blueprint("admin", __name__)

PASS_URL = "/passes/<pass_type_id>/<serial_number>"
MAX_PAGE = 500


@bp.before_request
def require_admin_token() -> None:
    expected = current_app.config.get("ADMIN_TOKEN")
    if not expected:
        raise Forbidden("the admin API is disabled: set ADMIN_TOKEN to enable it")
    if not bearer_matches(request.headers.get("Authorization", ""), expected):
        raise Unauthorized("send Authorization: Bearer <ADMIN_TOKEN>")


def describe(pass_: Pass, report: Report | None = None) -> dict[str, Any]:
    """The admin view of a pass (never its authentication token), with the warnings of a
    change when there was one."""
    devices = db.session.scalar(sa.select(sa.func.count()).where(Registration.pass_id == pass_.id))
    last_modified = store.last_modified(pass_.updated_at)
    return {
        "passTypeIdentifier": pass_.pass_type_identifier,
        "serialNumber": pass_.serial_number,
        "template": pass_.template,
        "pass": pass_.data,
        "files": sorted(f.name for f in pass_.files),
        "updateTag": str(pass_.update_tag),
        "lastModified": http_date(last_modified),
        "updatedAt": pass_.updated_at.isoformat(),
        "devices": devices,
        "webServiceURL": context.web_service_url(),
        "personalized": pass_.personalized_at is not None,
        "downloadURL": links.download_url(pass_),
        **({"warnings": [w.as_dict() for w in report.warnings]} if report else {}),
    }


def _limit() -> int:
    value = whole_number(request.args.get("limit", "100"))
    if value is None or not 1 <= value <= MAX_PAGE:
        raise ValidationError(f"limit must be a number from 1 to {MAX_PAGE}", path="limit")
    return value


@bp.post("/passes")
def create() -> tuple[Response, int]:
    body = json_body()
    unknown = set(body) - {"template", "serialNumber", "pass", "files"}
    if unknown:
        raise ValidationError(f"unknown keys: {', '.join(sorted(unknown))}", path="$")
    pass_, report = store.create_pass(
        template=body.get("template"),
        data=body.get("pass"),
        files=store.decode_files(body.get("files")),
        serial_number=body.get("serialNumber"),
    )
    return jsonify(_commit(pass_, report)), 201


@bp.get("/passes")
def list_passes() -> Response:
    """Newest first, paged by `after`: the previous page's `next`.

    Many passes can share an update tag (`flask passes push --all` gives one to all it
    touches), so pages are cut on (update tag, id), which is unique: `next` is "TAG.ID".
    A bare update tag, what `after` took before, still lists the passes older than it.
    """
    limit = _limit()
    query = sa.select(Pass).order_by(Pass.update_tag.desc(), Pass.id.desc()).limit(limit)
    if "after" in request.args:
        tag, dot, pass_id = request.args["after"].partition(".")
        after_tag = whole_number(tag)
        after_id = whole_number(pass_id) if dot else None
        if after_tag is None or (dot and after_id is None):
            raise ValidationError("after must be the `next` of the previous page", path="after")
        if after_id is None:
            query = query.where(Pass.update_tag < after_tag)
        else:
            query = query.where(
                sa.or_(
                    Pass.update_tag < after_tag,
                    sa.and_(Pass.update_tag == after_tag, Pass.id < after_id),
                )
            )
    passes = db.session.scalars(query).all()
    last = passes[-1] if len(passes) == limit else None
    return jsonify(
        {
            "next": f"{last.update_tag}.{last.id}" if last else None,
            "passes": [
                {
                    "passTypeIdentifier": p.pass_type_identifier,
                    "serialNumber": p.serial_number,
                    "template": p.template,
                    "updateTag": str(p.update_tag),
                    "updatedAt": p.updated_at.isoformat(),
                }
                for p in passes
            ],
        }
    )


@bp.get(PASS_URL)
def show(pass_type_id: str, serial_number: str) -> Response:
    return jsonify(describe(store.get_pass(pass_type_id, serial_number)))


@bp.patch(PASS_URL)
def update(pass_type_id: str, serial_number: str) -> Response:
    body = json_body()
    unknown = set(body) - {"pass", "files"}
    if unknown:
        raise ValidationError(f"unknown keys: {', '.join(sorted(unknown))}", path="$")
    if "pass" not in body and "files" not in body:
        raise ValidationError("send `pass` (a partial pass.json) and/or `files`", path="$")
    pass_, report = store.update_pass(
        pass_type_id,
        serial_number,
        data=body.get("pass"),
        files=store.decode_files(body.get("files")),
    )
    return _changed(pass_, report)


@bp.post(PASS_URL + "/void")
def void(pass_type_id: str, serial_number: str) -> Response:
    """Void the pass: Wallet shows it as no longer valid. An update, so devices hear of it."""
    return _change(pass_type_id, serial_number, {"voided": True})


@bp.post(PASS_URL + "/expire")
def expire(pass_type_id: str, serial_number: str) -> Response:
    """Set `expirationDate` (default: now); after it Wallet shows the pass as expired."""
    body = json_body() if request.get_data() else {}
    when = body.get("expirationDate", utcnow().isoformat(timespec="seconds"))
    # The parser validation uses: what passes here is what the pass will accept.
    if not isinstance(when, str) or parse_w3c_datetime(when) is None:
        raise ValidationError(
            "must be an ISO 8601 date and time with a time zone, e.g. 2026-12-31T23:59:00Z",
            path="$.expirationDate",
        )
    return _change(pass_type_id, serial_number, {"expirationDate": when})


def _change(pass_type_id: str, serial_number: str, data: dict[str, Any]) -> Response:
    return _changed(*store.update_pass(pass_type_id, serial_number, data=data))


def _commit(pass_: Pass, report: Report) -> dict[str, Any]:
    """Commit the change; its description as this transaction made it.

    Described before the commit: read after it, the row may already hold a concurrent
    change that committed in between, with that change's update tag.
    """
    description = describe(pass_, report)
    db.session.commit()
    return description


def _changed(pass_: Pass, report: Report) -> Response:
    return jsonify(_commit(pass_, report))


@bp.post("/bundles")
def bundle() -> Response:
    """Several passes in one .pkpasses download."""
    keys = bundles.parse_pass_list(json_body().get("passes"))
    passes = [store.get_pass(pass_type_id, serial) for pass_type_id, serial in keys]
    response = Response(bundles.build_bundle(passes), mimetype=bundles.PKPASSES_MIMETYPE)
    response.headers["Content-Disposition"] = 'attachment; filename="passes.pkpasses"'
    return response


@bp.post("/sign")
def sign() -> Response:
    """Sign an unsigned package (a zip of pass.json, images, xx.lproj/) with our certificate.

    Validated first; nothing is stored unless `?store=true`, which keeps it as a pass
    served and updated by this service (its webServiceURL and token then become ours).
    """
    files = packages.read_zip(request.get_data())
    if "pass.json" not in files:
        raise ValidationError("the zip has no pass.json at its top level")
    credentials = context.credentials()
    pkpass, report = packages.sign_unsigned(files, credentials)
    if request.args.get("store") in ("1", "true"):
        pass_json = json.loads(files.pop("pass.json"))
        serial = pass_json.get("serialNumber")
        data = {k: v for k, v in pass_json.items() if k not in INJECTED_KEYS}
        pass_, report = store.create_pass(
            template=None, data=data, files=files, serial_number=serial
        )
        db.session.commit()
        pkpass = store.build_pkpass(pass_)
    response = Response(pkpass, mimetype=PKPASS_MIMETYPE)
    response.headers["X-Pass-Warnings"] = str(len(report.warnings))
    return response


@bp.get(PASS_URL + "/pkpass")
def download(pass_type_id: str, serial_number: str) -> Response:
    pass_ = store.get_pass(pass_type_id, serial_number)
    response = Response(store.build_pkpass(pass_), mimetype=PKPASS_MIMETYPE)
    response.headers["Content-Disposition"] = f'attachment; filename="{serial_number}.pkpass"'
    response.headers["Last-Modified"] = http_date(store.last_modified(pass_.updated_at))
    return response


@bp.get(PASS_URL + "/registrations")
def registrations(pass_type_id: str, serial_number: str) -> Response:
    pass_ = store.get_pass(pass_type_id, serial_number)
    rows = store.registrations_of(pass_, limit=_limit())
    return jsonify(
        {
            "registrations": [
                {
                    "deviceLibraryIdentifier": device.device_library_identifier,
                    # Enough to tell devices apart, not enough to push to them.
                    "pushTokenPrefix": device.push_token[:8],
                    "registeredAt": registered_at.isoformat(),
                    "pushPending": pending is not None,
                }
                for device, registered_at, pending in rows
            ]
        }
    )


@bp.get(PASS_URL + "/personalization")
def personalization(pass_type_id: str, serial_number: str) -> Response:
    """What the user entered when enrolling through Wallet (personal data: admins only)."""
    pass_ = store.get_pass(pass_type_id, serial_number)
    if pass_.personalized_at is None:
        raise NotFound("this pass has not been personalized")
    return jsonify(
        {
            "requiredPersonalizationInfo": pass_.personalization_info,
            "personalizedAt": pass_.personalized_at.isoformat(),
        }
    )


@bp.get("/logs")
def logs() -> Response:
    entries = db.session.scalars(
        sa.select(DeviceLogEntry).order_by(DeviceLogEntry.id.desc()).limit(_limit())
    )
    return jsonify(
        {"logs": [{"message": e.message, "receivedAt": e.created_at.isoformat()} for e in entries]}
    )
