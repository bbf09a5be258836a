"""The admin JSON API: create, change, inspect and download passes."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from flask import Response, current_app, request
from flask_openapi3 import APIBlueprint
from werkzeug.http import http_date

from models import DeviceLogEntry, Pass, PassTemplate, Registration, db
from passes import bundles, context, links, packages, pass_templates, store, webhooks
from passes.building import INJECTED_KEYS
from passes.errors import Forbidden, NotFound, Unauthorized, ValidationError
from passes.openapi import ADMIN, ADMIN_TAG
from passes.schemas import (
    INVALID_PASS,
    LAST_MODIFIED,
    NO_CERTIFICATE,
    BundleRequest,
    ChangedPass,
    ChangedTemplate,
    DeviceLogs,
    DeviceRegistration,
    Empty,
    Expiry,
    LogEntry,
    NewPass,
    NewWebhook,
    NewWebhookEndpoint,
    Page,
    PassChange,
    PassDescription,
    PassList,
    PassPage,
    PassPath,
    PassSummary,
    PersonalizationRecord,
    Registrations,
    SignQuery,
    TemplateDescription,
    TemplateList,
    TemplatePath,
    TemplateQuery,
    TemplateSummary,
    WebhookBacklog,
    WebhookDeliveries,
    WebhookDelivery,
    WebhookEndpointInfo,
    WebhookEndpoints,
    WebhookPath,
    binary,
    challenge,
    error,
    header,
    json_response,
    too_large,
)
from passes.signing import PKPASS_MIMETYPE
from passes.tokens import bearer_matches
from passes.validation import Report

bp = APIBlueprint(
    "admin",
    __name__,
    url_prefix="/api",
    abp_tags=[ADMIN_TAG],
    abp_security=ADMIN,
    # The answers every admin request can get besides its own.
    abp_responses={
        400: error("A parameter is out of range."),
        401: error("Missing or wrong `Authorization: Bearer` token.", challenge("Bearer")),
        403: error("The admin API is disabled: ADMIN_TOKEN is not set."),
        429: error(
            "Too many wrong tokens from this address (10 a minute): every admin request from "
            "it waits until the minute has passed."
        ),
    },
)

PASS_URL = "/passes/<passTypeIdentifier>/<serialNumber>"
NO_SUCH_PASS = {404: error("No such pass.")}
TOO_LARGE = {413: too_large("MAX_CONTENT_LENGTH (5 MiB by default)")}
MALFORMED = {400: error("The body is malformed.")}
# A zip as it is (a package, a template folder): no model reads it, passes/packages.py does.
ZIP_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@bp.before_request
def require_admin_token() -> None:
    expected = current_app.config.get("ADMIN_TOKEN")
    if not expected:
        raise Forbidden("the admin API is disabled: set ADMIN_TOKEN to enable it")
    if not bearer_matches(request.headers.get("Authorization", ""), expected):
        raise Unauthorized("send Authorization: Bearer <ADMIN_TOKEN>")


def describe(pass_: Pass, report: Report | None = None) -> PassDescription:
    """The admin view of a pass (never its authentication token), with the warnings of a
    change when there was one."""
    devices = db.session.scalar(sa.select(sa.func.count()).where(Registration.pass_id == pass_.id))
    last_modified = store.last_modified(pass_.updated_at)
    fields: dict[str, Any] = {
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
    }
    if report is None:
        return PassDescription(**fields)
    return ChangedPass(**fields, warnings=[w.as_dict() for w in report.warnings])


@bp.post(
    "/passes",
    operation_id="createPass",
    responses={
        201: json_response(ChangedPass, "The new pass, with its warnings."),
        400: error("The body is malformed, or names no known template."),
        409: error("A pass with this serial number exists."),
        **TOO_LARGE,
        422: INVALID_PASS,
        503: NO_CERTIFICATE,
    },
)
def create(body: NewPass) -> tuple[Response, int]:
    """Create a pass"""
    pass_, report = store.create_pass(
        template=body.template,
        data=body.pass_,
        files=store.decode_files(body.files),
        serial_number=body.serialNumber,
        pass_type_identifier=body.passTypeIdentifier,
    )
    return _commit(pass_, report).answer(201)


@bp.get(
    "/passes",
    operation_id="listPasses",
    responses={
        200: json_response(PassList, "One page of passes."),
        400: error("limit or after is out of range."),
    },
)
def list_passes(query: PassPage) -> Response:
    """Passes, most recently changed first"""
    # Paged by `after`: the previous page's `next`. Many passes can share an update tag
    # (`flask passes push --all` gives one to all it touches), so pages are cut on
    # (update tag, id), which is unique: `next` is "TAG.ID". A bare update tag, what
    # `after` took before, still lists the passes older than it.
    limit = query.limit
    select = sa.select(Pass).order_by(Pass.update_tag.desc(), Pass.id.desc()).limit(limit)
    if query.after is not None:
        # Digits only, at most 18 each (PassPage): they fit the 64-bit columns.
        tag, dot, pass_id = query.after.partition(".")
        after_tag, after_id = int(tag), int(pass_id) if dot else None
        if after_id is None:
            select = select.where(Pass.update_tag < after_tag)
        else:
            select = select.where(
                sa.or_(
                    Pass.update_tag < after_tag,
                    sa.and_(Pass.update_tag == after_tag, Pass.id < after_id),
                )
            )
    passes = db.session.scalars(select).all()
    last = passes[-1] if len(passes) == limit else None
    return PassList(
        next=f"{last.update_tag}.{last.id}" if last else None,
        passes=[
            PassSummary(
                passTypeIdentifier=p.pass_type_identifier,
                serialNumber=p.serial_number,
                template=p.template,
                updateTag=str(p.update_tag),
                updatedAt=p.updated_at.isoformat(),
            )
            for p in passes
        ],
    ).answer()


@bp.get(
    PASS_URL,
    operation_id="getPass",
    responses={200: json_response(PassDescription, "The pass."), **NO_SUCH_PASS},
)
def show(path: PassPath) -> Response:
    """A pass: its data, files, update tag and how many devices hold it"""
    return describe(store.get_pass(path.passTypeIdentifier, path.serialNumber)).answer()


def _change_responses(body: bool) -> dict[int, Any]:
    """void, expire and PATCH: change the pass, push its devices, answer its description."""
    return {
        200: json_response(ChangedPass, "The pass as changed, with the change's warnings."),
        **NO_SUCH_PASS,
        **(MALFORMED | TOO_LARGE if body else {}),
        422: INVALID_PASS,
        503: NO_CERTIFICATE,
    }


@bp.patch(
    PASS_URL,
    operation_id="updatePass",
    description=(
        "`null` removes a key of pass.json or one of the pass's own files. Arrays such as "
        "headerFields are replaced whole."
    ),
    responses=_change_responses(body=True),
)
def update(path: PassPath, body: PassChange) -> Response:
    """Change a pass; its devices are pushed"""
    pass_, report = store.update_pass(
        path.passTypeIdentifier,
        path.serialNumber,
        data=body.pass_,
        files=store.decode_files(body.files),
    )
    return _changed(pass_, report)


@bp.post(PASS_URL + "/void", operation_id="voidPass", responses=_change_responses(body=False))
def void(path: PassPath) -> Response:
    """Void a pass: Wallet shows it as no longer valid"""
    # An update, so devices hear of it.
    return _changed(*store.void_pass(path.passTypeIdentifier, path.serialNumber))


@bp.post(PASS_URL + "/expire", operation_id="expirePass", responses=_change_responses(body=True))
def expire(path: PassPath, body: Expiry) -> Response:
    """Set the pass's expirationDate"""
    # Default: now; after it Wallet shows the pass as expired.
    return _changed(*store.expire_pass(path.passTypeIdentifier, path.serialNumber, body))


def _commit(pass_: Pass, report: Report) -> PassDescription:
    """Commit the change; its description as this transaction made it.

    Described before the commit: read after it, the row may already hold a concurrent
    change that committed in between, with that change's update tag.
    """
    description = describe(pass_, report)
    db.session.commit()
    return description


def _changed(pass_: Pass, report: Report) -> Response:
    return _commit(pass_, report).answer()


@bp.post(
    "/bundles",
    operation_id="bundlePasses",
    responses={
        200: binary(
            "A zip of signed passes; iOS 15 and later add them all at once.",
            bundles.PKPASSES_MIMETYPE,
            {"Content-Disposition": header("attachment; filename=passes.pkpasses")},
        ),
        400: error("passes is not a list of distinct pass identifiers."),
        404: error("A listed pass does not exist."),
        **TOO_LARGE,
        503: NO_CERTIFICATE,
    },
)
def bundle(body: BundleRequest) -> Response:
    """Several passes in one .pkpasses download"""
    passes = [store.get_pass(key.passTypeIdentifier, key.serialNumber) for key in body.passes]
    response = Response(bundles.build_bundle(passes), mimetype=bundles.PKPASSES_MIMETYPE)
    response.headers["Content-Disposition"] = 'attachment; filename="passes.pkpasses"'
    return response


@bp.post(
    "/sign",
    operation_id="signPackage",
    description=(
        "The zip holds pass.json, images and xx.lproj folders (one enclosing folder is "
        "unwrapped). It is validated first; with `store=true` it is kept as a pass "
        "served and updated by this service (its webServiceURL and token then become ours)."
    ),
    responses={
        200: binary(
            "The signed pass.",
            PKPASS_MIMETYPE,
            {
                "X-Pass-Warnings": header(
                    "How many warnings the validation gave.", {"type": "integer"}
                )
            },
        ),
        400: error("The body is not a zip of a pass package with a pass.json."),
        409: error("store: a pass with this serial number exists."),
        **TOO_LARGE,
        422: INVALID_PASS,
        503: NO_CERTIFICATE,
    },
    openapi_extensions=ZIP_BODY,
)
def sign(query: SignQuery) -> Response:
    """Sign an unsigned pass package with this service's certificate"""
    files = packages.read_zip(request.get_data())
    if "pass.json" not in files:
        raise ValidationError("the zip has no pass.json at its top level")
    pkpass, report = packages.sign_unsigned(files, context.certificates())
    if query.store in ("1", "true"):
        pass_json = json.loads(files.pop("pass.json"))
        serial = pass_json.get("serialNumber")
        data = {k: v for k, v in pass_json.items() if k not in INJECTED_KEYS}
        pass_, report = store.create_pass(
            template=None,
            data=data,
            files=files,
            serial_number=serial,
            pass_type_identifier=pass_json["passTypeIdentifier"],
        )
        db.session.commit()
        pkpass = store.build_pkpass(pass_)
    response = Response(pkpass, mimetype=PKPASS_MIMETYPE)
    response.headers["X-Pass-Warnings"] = str(len(report.warnings))
    return response


@bp.get(
    PASS_URL + "/pkpass",
    operation_id="downloadPass",
    responses={
        200: binary(
            "The signed pass.",
            PKPASS_MIMETYPE,
            {
                "Content-Disposition": header("attachment; filename=<serial>.pkpass"),
                "Last-Modified": LAST_MODIFIED,
            },
        ),
        **NO_SUCH_PASS,
        503: NO_CERTIFICATE,
    },
)
def download(path: PassPath) -> Response:
    """The signed .pkpass"""
    serial_number = path.serialNumber
    pass_ = store.get_pass(path.passTypeIdentifier, serial_number)
    response = Response(store.build_pkpass(pass_), mimetype=PKPASS_MIMETYPE)
    response.headers["Content-Disposition"] = f'attachment; filename="{serial_number}.pkpass"'
    response.headers["Last-Modified"] = http_date(store.last_modified(pass_.updated_at))
    return response


@bp.get(
    PASS_URL + "/registrations",
    operation_id="listRegistrations",
    responses={
        200: json_response(Registrations, "Oldest registration first."),
        400: error("limit is out of range."),
        **NO_SUCH_PASS,
    },
)
def registrations(path: PassPath, query: Page) -> Response:
    """The devices registered for a pass"""
    pass_ = store.get_pass(path.passTypeIdentifier, path.serialNumber)
    return Registrations(registrations=registration_entries(pass_, query.limit)).answer()


def registration_entries(pass_: Pass, limit: int) -> list[DeviceRegistration]:
    """The devices holding a pass as admins see them (here and in `flask passes`)."""
    return [
        DeviceRegistration(
            deviceLibraryIdentifier=device.device_library_identifier,
            # Enough to tell devices apart, not enough to push to them.
            pushTokenPrefix=device.push_token[:8],
            registeredAt=registered_at.isoformat(),
            pushPending=pending is not None,
        )
        for device, registered_at, pending in store.registrations_of(pass_, limit=limit)
    ]


@bp.get(
    PASS_URL + "/personalization",
    operation_id="getPersonalization",
    responses={
        200: json_response(PersonalizationRecord, "The user's details (personal data)."),
        404: error("No such pass, or it has not been personalized."),
    },
)
def personalization(path: PassPath) -> Response:
    """What the user entered when enrolling through Wallet"""
    # Personal data: admins only.
    pass_ = store.get_pass(path.passTypeIdentifier, path.serialNumber)
    if pass_.personalized_at is None:
        raise NotFound("this pass has not been personalized")
    return PersonalizationRecord(
        requiredPersonalizationInfo=pass_.personalization_info,
        personalizedAt=pass_.personalized_at.isoformat(),
    ).answer()


@bp.get(
    "/logs",
    operation_id="listDeviceLogs",
    responses={
        200: json_response(DeviceLogs, "The newest messages."),
        400: error("limit is out of range."),
    },
)
def logs(query: Page) -> Response:
    """Messages Wallet sent to /wallet/v1/log, newest first"""
    return DeviceLogs(logs=log_entries(query.limit)).answer()


def log_entries(limit: int) -> list[LogEntry]:
    """The newest messages devices sent to /wallet/v1/log, newest first (here and in
    `flask passes`)."""
    entries = db.session.scalars(
        sa.select(DeviceLogEntry).order_by(DeviceLogEntry.id.desc()).limit(limit)
    )
    return [LogEntry(message=e.message, receivedAt=e.created_at.isoformat()) for e in entries]


# --- Templates (passes/pass_templates.py) --------------------------------------------------

TEMPLATE_URL = "/templates/<name>"
NO_SUCH_TEMPLATE = {404: error("No template has this name.")}


def _template_summary(template: PassTemplate, passes: int) -> dict[str, Any]:
    version = pass_templates.current_version(template)
    return {
        "name": template.name,
        "version": version.version,
        "updatedAt": version.created_at.isoformat(),
        "source": version.source,
        "files": [f.name for f in version.files],
        "passes": passes,
    }


def template_list() -> TemplateList:
    """Every template (here, in `flask passes templates list` and the dashboard)."""
    counts = dict(
        db.session.execute(
            sa.select(Pass.template, sa.func.count())
            .where(Pass.template.is_not(None))
            .group_by(Pass.template)
        ).all()
    )
    templates = db.session.scalars(sa.select(PassTemplate).order_by(PassTemplate.name))
    return TemplateList(
        templates=[
            TemplateSummary(**_template_summary(t, counts.get(t.name, 0))) for t in templates
        ]
    )


def template_description(name: str) -> TemplateDescription:
    template = pass_templates.get_template(name)
    version = pass_templates.current_version(template)
    return TemplateDescription(
        **_template_summary(template, pass_templates.passes_using(name)),
        pass_=version.pass_json,
        digest=version.digest,
    )


def put_template(name: str, files: dict[str, bytes]) -> tuple[ChangedTemplate, bool]:
    """Put and commit a template (here, in `flask passes templates put` and the
    dashboard); whether it was created."""
    change = pass_templates.put_template(name, files)
    template = change.version.template
    answer = ChangedTemplate(
        **_template_summary(template, pass_templates.passes_using(name)),
        pass_=change.version.pass_json,
        digest=change.version.digest,
        changed=change.changed,
        passesUpdated=change.passes,
        warnings=[w.as_dict() for w in change.report.warnings],
    )
    db.session.commit()
    return answer, change.created


@bp.get(
    "/templates",
    operation_id="listTemplates",
    responses={200: json_response(TemplateList, "Every template, by name.")},
)
def list_templates() -> Response:
    """Templates: current version, files and how many passes use each"""
    return template_list().answer()


@bp.put(
    TEMPLATE_URL,
    operation_id="putTemplate",
    description=(
        "The body is the template's folder as a zip: pass.json, images and xx.lproj "
        "folders (one enclosing folder, such as Pass Designer's `X.pkpasstemplate/`, is "
        "unwrapped; `tooling.json` is left out). Strings of pass.json may hold "
        "`{{serialNumber}}` and `{{data.some.key}}`, filled for each pass. A content that "
        "differs from the current one is a new version: every pass made from the template "
        "moves to it and its devices are pushed, in one transaction."
    ),
    responses={
        200: json_response(ChangedTemplate, "Changed (or unchanged: `changed` false)."),
        201: json_response(ChangedTemplate, "Created."),
        400: error("The body is not a zip, or holds a name twice or too much."),
        **TOO_LARGE,
        422: INVALID_PASS,
    },
    openapi_extensions=ZIP_BODY,
)
def put_template_view(path: TemplatePath) -> tuple[Response, int] | Response:
    """Create or change a template from a zip of its folder"""
    answer, created = put_template(path.name, pass_templates.read_upload(request.get_data()))
    return answer.answer(201 if created else 200)


@bp.get(
    TEMPLATE_URL,
    operation_id="getTemplate",
    responses={
        200: {
            **json_response(TemplateDescription, "The template with its pass.json."),
            "content": {
                **json_response(TemplateDescription, "")["content"],
                "application/zip": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **NO_SUCH_TEMPLATE,
    },
)
def get_template(path: TemplatePath, query: TemplateQuery) -> Response:
    """A template: its current version, files and pass.json (or its folder as a zip)"""
    if query.format == "zip":
        version = pass_templates.current_version(pass_templates.get_template(path.name))
        response = Response(pass_templates.template_zip(version), mimetype="application/zip")
        response.headers["Content-Disposition"] = f'attachment; filename="{path.name}.zip"'
        return response
    return template_description(path.name).answer()


@bp.delete(
    TEMPLATE_URL,
    operation_id="removeTemplate",
    responses={
        200: json_response(Empty, "Removed, with every version."),
        **NO_SUCH_TEMPLATE,
        409: error("Passes are made from it (the message says how many)."),
    },
)
def remove_template(path: TemplatePath) -> Response:
    """Delete a template that no pass uses"""
    pass_templates.remove_template(path.name)
    db.session.commit()
    return Empty().answer()


# --- Webhook endpoints (passes/webhooks.py) ------------------------------------------------


def _endpoint_info(endpoint: webhooks.EndpointView) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": webhooks.display_url(endpoint.url),
        "events": endpoint.events,
        "createdAt": endpoint.created_at.isoformat() if endpoint.created_at else None,
    }


@bp.get(
    "/webhooks",
    operation_id="listWebhooks",
    responses={200: json_response(WebhookEndpoints, "Every endpoint, and the undelivered.")},
)
def list_webhooks() -> Response:
    """Where events go, and what waits to be delivered"""
    return webhook_endpoints().answer()


def webhook_endpoints() -> WebhookEndpoints:
    """Every endpoint and the backlog (here and in `flask passes webhooks list`)."""
    backlog = webhooks.backlog()
    return WebhookEndpoints(
        endpoints=[WebhookEndpointInfo(**_endpoint_info(e)) for e in webhooks.endpoints()],
        backlog=WebhookBacklog(
            undelivered=backlog.undelivered,
            failing=backlog.failing,
            oldestUndeliveredAt=backlog.oldest.isoformat() if backlog.oldest else None,
        ),
    )


@bp.post(
    "/webhooks",
    operation_id="addWebhook",
    responses={
        201: json_response(NewWebhookEndpoint, "The endpoint, with its secret (shown once)."),
        **MALFORMED,
        409: error(f"There are already {webhooks.MAX_ENDPOINTS} endpoints."),
        **TOO_LARGE,
    },
)
def add_webhook(body: NewWebhook) -> Response:
    """Send events to one more endpoint"""
    return added_webhook(body).answer(201)


def added_webhook(body: NewWebhook) -> NewWebhookEndpoint:
    """Add and commit an endpoint (here and in `flask passes webhooks add`)."""
    endpoint, secret = webhooks.add_endpoint(body.url, body.events, body.secret)
    db.session.commit()
    return NewWebhookEndpoint(**_endpoint_info(endpoint), secret=secret)


@bp.delete(
    "/webhooks/<int:endpointId>",
    operation_id="removeWebhook",
    responses={
        200: json_response(Empty, "Removed, with its undelivered messages."),
        404: error("No endpoint has this id."),
    },
)
def remove_webhook(path: WebhookPath) -> Response:
    """Stop sending events to an endpoint"""
    webhooks.remove_endpoint(path.endpointId)
    db.session.commit()
    return Empty().answer()


@bp.get(
    "/webhooks/messages",
    operation_id="listWebhookMessages",
    responses={
        200: json_response(WebhookDeliveries, "The newest messages, delivered or not."),
        400: error("limit is out of range."),
    },
)
def webhook_messages(query: Page) -> Response:
    """The latest webhook messages and how their delivery went, newest first"""
    return webhook_deliveries(query.limit).answer()


def webhook_deliveries(limit: int) -> WebhookDeliveries:
    """The newest messages (here and in `flask passes webhooks messages`)."""
    return WebhookDeliveries(
        messages=[
            WebhookDelivery(
                webhookId=m.message_id,
                endpoint="env" if m.endpoint_id is None else str(m.endpoint_id),
                type=m.event_type,
                queuedAt=m.created_at.isoformat(),
                attempts=m.attempts,
                state=webhooks.state_of(m),
                lastStatus=m.last_status,
                lastError=m.last_error,
                deliveredAt=m.delivered_at.isoformat() if m.delivered_at else None,
                nextAttemptAt=m.due_at.isoformat() if m.due_at else None,
            )
            for m in webhooks.recent_messages(limit)
        ]
    )
