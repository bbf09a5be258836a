"""The admin dashboard: HTML pages over the same operations as the admin API.

Admins sign in with ADMIN_TOKEN once; the signed session cookie then carries a random
session id whose record the server keeps (DashboardSession), so that signing out ends the
session for every copy of the cookie. Every POST carries a per-session CSRF token, because
a cookie (unlike the API's bearer header) is sent by the browser on requests that other
sites start.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException

from models import (
    DashboardSession,
    DeviceLogEntry,
    Pass,
    PushOutcomeCount,
    Registration,
    db,
    utcnow,
)
from passes import (
    admin,
    context,
    delivery,
    distribution,
    doctor,
    field_form,
    health,
    links,
    overview,
    pass_templates,
    pushing,
    store,
    webhooks,
)
from passes.errors import PAGE_HEADERS, ApiError, ValidationError
from passes.json_body import whole_number
from passes.validation import PassInvalid, Problem, Report

bp = Blueprint("dashboard", __name__, template_folder="templates")


class SessionOnlyWhenSent(SecureCookieSessionInterface):
    """Flask's signed-cookie session, without its set-up on requests that carry no cookie.

    Only dashboard users have a session, yet Flask builds the cookie signer on every request;
    on the device endpoints that was about a tenth of the time (measured with
    bench/http_paths.py, removed in 0400a08). An empty session behaves as Flask's own, and
    saving one signs it as usual.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and not request.environ.get("HTTP_COOKIE"):
            return self.session_class()
        return super().open_session(app, request)


PAGE_SIZE = 50
DEVICE_PAGE_SIZE = 100
# The doctor on the pass page examines the first devices registered, at every view; a pass
# held by more is walked whole by `flask passes doctor` (which says so on the page).
DOCTOR_DEVICES = 1000
LOG_ROWS = 200
WEBHOOK_ROWS = 100
PUSH_HOURS = 72
# A session ends on its own after this long, even if its browser never signs out.
LOGIN_SECONDS = 12 * 3600
OUTCOMES = ("sent", "removed", "retry_later", "failed")
HEADERS = {**PAGE_HEADERS, "Cache-Control": "no-store"}


# --- Login and CSRF ---------------------------------------------------------------------


def _admin_token() -> str | None:
    return current_app.config.get("ADMIN_TOKEN") or None


def _token_fingerprint(admin_token: str) -> str:
    # Stored in the session so that changing ADMIN_TOKEN signs every browser out. Rotating
    # SECRET_KEY would too, but it also derives the passes' authentication tokens.
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, b"dashboard:" + admin_token.encode(), hashlib.sha256).hexdigest()


def _id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def logged_in() -> bool:
    """Whether the cookie names a live session made with the current ADMIN_TOKEN (asked of
    the database once per request)."""
    if "dashboard_logged_in" not in g:
        g.dashboard_logged_in = _live_session()
    return bool(g.dashboard_logged_in)


def _live_session() -> bool:
    admin_token = _admin_token()
    session_id, fingerprint = session.get("session_id"), session.get("admin_key")
    if admin_token is None or not isinstance(session_id, str) or not isinstance(fingerprint, str):
        return False
    if not hmac.compare_digest(fingerprint, _token_fingerprint(admin_token)):
        return False
    live = sa.select(DashboardSession.id).where(
        DashboardSession.id_hash == _id_hash(session_id),
        DashboardSession.created_at > utcnow() - timedelta(seconds=LOGIN_SECONDS),
    )
    return db.session.scalar(live) is not None


def _start_session(admin_token: str) -> None:
    """A new session: nothing from before the login (its CSRF token included) survives."""
    session.clear()
    session_id = secrets.token_urlsafe(32)
    expired = utcnow() - timedelta(seconds=LOGIN_SECONDS)
    db.session.execute(sa.delete(DashboardSession).where(DashboardSession.created_at <= expired))
    db.session.add(DashboardSession(id_hash=_id_hash(session_id)))
    db.session.commit()
    session["session_id"] = session_id
    session["admin_key"] = _token_fingerprint(admin_token)
    csrf_token()


def _end_session() -> None:
    session_id = session.get("session_id")
    if isinstance(session_id, str):
        db.session.execute(
            sa.delete(DashboardSession).where(DashboardSession.id_hash == _id_hash(session_id))
        )
        db.session.commit()
    session.clear()


def csrf_token() -> str:
    """This session's CSRF token, made on first use; forms send it back as `csrf_token`."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def _check_csrf() -> None:
    expected = session.get("csrf")
    offered = request.form.get("csrf_token", "")
    if not isinstance(expected, str) or not hmac.compare_digest(
        offered.encode(), expected.encode()
    ):
        abort(400, "This form is out of date or did not come from the dashboard. Reload the page.")


@bp.before_request
def guard() -> Any:
    if _admin_token() is None:
        return render_template("dashboard/disabled.html"), 403
    if request.method == "POST":
        _check_csrf()  # the login form too: no one else may sign a browser in
    if request.endpoint != "dashboard.login" and not logged_in():
        return redirect(url_for(".login", next=request.full_path))
    return None


@bp.after_request
def security_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@bp.context_processor
def template_helpers() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "logged_in": logged_in, "when": when}


def when(moment: datetime | None) -> str:
    """A timestamp for people: UTC to the second, as the database keeps it."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def _safe_next(target: str | None) -> str:
    # Only back into the dashboard: a `next` pointing elsewhere would make the login page
    # an open redirect.
    home = url_for(".passes")
    if target and target.startswith(home) and "\\" not in target and "//" not in target:
        return target
    return home


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    if request.method == "POST":
        offered = request.form.get("token", "")
        admin_token = _admin_token() or ""
        if hmac.compare_digest(offered.encode(), admin_token.encode()):
            _start_session(admin_token)
            return redirect(_safe_next(request.args.get("next")))
        error = "That is not the admin token."
    status = 401 if error else 200
    return render_template("dashboard/login.html", error=error), status


@bp.post("/logout")
def logout() -> Response:
    _end_session()
    flash("Signed out.")
    return redirect(url_for(".login"))


# --- Pages ----------------------------------------------------------------------------------


def _page_number() -> int:
    value = request.args.get("page", "1")
    page = whole_number(value, max_digits=6)
    return page if page else 1


@bp.get("/")
def passes() -> str:
    """Every pass, newest change first; `q` searches serial numbers and template names."""
    search = request.args.get("q", "").strip()[:200]
    page = _page_number()
    query = sa.select(Pass)
    if search:
        query = query.where(
            sa.or_(
                Pass.serial_number.icontains(search, autoescape=True),
                Pass.template.icontains(search, autoescape=True),
            )
        )
    total = db.session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
    rows = db.session.scalars(
        query.order_by(Pass.update_tag.desc(), Pass.id.desc())
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    ).all()
    devices = dict(
        db.session.execute(
            sa.select(Registration.pass_id, sa.func.count())
            .where(Registration.pass_id.in_([p.id for p in rows]))
            .group_by(Registration.pass_id)
        ).all()
    )
    return render_template(
        "dashboard/passes.html",
        passes=rows,
        devices=devices,
        search=search,
        page=page,
        total=total,
        pages=max(1, -(-total // PAGE_SIZE)),
    )


@bp.get("/passes/<pass_type_id>/<serial_number>")
def pass_detail(pass_type_id: str, serial_number: str) -> str:
    """The pass, and the devices holding it a page at a time (a pass can have thousands)."""
    pass_ = store.get_pass(pass_type_id, serial_number)
    devices = store.count_registrations(pass_)
    pages = max(1, -(-devices // DEVICE_PAGE_SIZE))
    page = min(_page_number(), pages)
    registrations = store.registrations_of(
        pass_, limit=DEVICE_PAGE_SIZE, offset=(page - 1) * DEVICE_PAGE_SIZE
    )
    deliveries = delivery.deliveries_of(
        pass_, limit=DEVICE_PAGE_SIZE, offset=(page - 1) * DEVICE_PAGE_SIZE
    )
    wallet_log = delivery.log_entries_about(pass_)
    return render_template(
        "dashboard/pass.html",
        pass_=pass_,
        preview=distribution.preview(pass_, _languages()),
        data_json=json.dumps(pass_.data, indent=2, sort_keys=True, ensure_ascii=False),
        registrations=[
            # The prefix tells devices apart without being enough to push to them.
            {"device": device, "token_prefix": device.push_token[:8], "since": since}
            for device, since, pending in registrations
        ],
        pending={device.id for device, _, pending in registrations if pending is not None},
        voided=pass_.data.get("voided") is True,
        share_url=links.download_url(pass_),
        devices=devices,
        page=page,
        pages=pages,
        diagnosis=doctor.diagnose(pass_, devices=DOCTOR_DEVICES),
        state_meanings=delivery.MEANINGS,
        timelines={
            item.device_id: (item, delivery.timeline(item, wallet_log)) for item in deliveries
        },
    )


def _languages() -> list[str]:
    return [tag for tag, _ in request.accept_languages]


@bp.post("/passes/<pass_type_id>/<serial_number>/push")
def push_now(pass_type_id: str, serial_number: str) -> Response:
    """A new version of the pass, so every device that holds it is told to fetch it."""
    pass_ = store.get_pass(pass_type_id, serial_number)
    store.touch_pass(pass_)
    devices = store.count_registrations(pass_)
    db.session.commit()
    if devices:
        flash(f"Queued a push to {devices} device{'s' if devices != 1 else ''}.")
    else:
        flash("No device holds this pass yet, so there is no one to push to.")
    return redirect(url_for(".pass_detail", pass_type_id=pass_type_id, serial_number=serial_number))


@bp.post("/passes/<pass_type_id>/<serial_number>/void")
def void(pass_type_id: str, serial_number: str) -> Response:
    back = url_for(".pass_detail", pass_type_id=pass_type_id, serial_number=serial_number)
    if request.form.get("confirm") != "yes":
        flash("Nothing changed: tick the box to confirm that the pass should be voided.")
        return redirect(back)
    store.void_pass(pass_type_id, serial_number)
    db.session.commit()
    flash("The pass is voided; devices that hold it are being told.")
    return redirect(back)


@bp.get("/overview")
def overview_page() -> str:
    """Charts: pushes per hour, installs and removals per day, push-to-download times."""
    return render_template("dashboard/overview.html", overview=overview.overview(utcnow()))


@bp.route("/passes/new", methods=["GET", "POST"])
def new_pass() -> Any:
    """A pass from a template: its fields as inputs, and JSON for anything else."""
    names = store.template_names()
    chosen = request.values.get("template", names[0] if names else "")
    template = (
        store.template_of_version(store.current_template_version(chosen).id) if chosen else None
    )
    base = template.pass_json if template else {}
    strings = distribution.localized_strings(template.files if template else {}, _languages())
    typed = None
    if request.method == "POST":
        typed = request.form
        serial = request.form.get("serialNumber", "").strip() or None
        pass_type = request.form.get("passTypeIdentifier") or None

        def create(data: dict[str, Any]) -> tuple[Pass, Report]:
            return store.create_pass(
                template=chosen or None,
                data=data,
                serial_number=serial,
                pass_type_identifier=pass_type,
            )

        done = _save(field_form.read(base, request.form), create)
        if isinstance(done, Response):
            return done
        problems, status = done
    else:
        problems, status = [], 200
    page = render_template(
        "dashboard/pass_form.html",
        pass_=None,
        templates=names,
        chosen=chosen,
        rows=field_form.by_row(field_form.inputs(base, typed, strings)),
        serial_number=typed.get("serialNumber", "") if typed else "",
        pass_types=context.runtime().certificates.pass_types,
        pass_type=typed.get("passTypeIdentifier", "") if typed else "",
        json_text=typed.get(field_form.JSON_INPUT, "") if typed else "",
        problems=problems,
    )
    return page, status


@bp.route("/passes/<pass_type_id>/<serial_number>/edit", methods=["GET", "POST"])
def edit_pass(pass_type_id: str, serial_number: str) -> Any:
    """Change a pass's field values and any other data; devices are pushed, as by the API."""
    pass_ = store.get_pass(pass_type_id, serial_number)
    current = store.pass_json(pass_)
    strings = distribution.localized_strings(store.pass_files(pass_), _languages())
    typed = None
    if request.method == "POST":
        typed = request.form

        def update(data: dict[str, Any]) -> tuple[Pass, Report]:
            return store.update_pass(pass_type_id, serial_number, data=data)

        done = _save(field_form.read(current, request.form), update, pushes=True)
        if isinstance(done, Response):
            return done
        problems, status = done
    else:
        problems, status = [], 200
    page = render_template(
        "dashboard/pass_form.html",
        pass_=pass_,
        rows=field_form.by_row(field_form.inputs(current, typed, strings)),
        json_text=typed.get(field_form.JSON_INPUT, "") if typed else "",
        data_json=json.dumps(pass_.data, indent=2, sort_keys=True, ensure_ascii=False),
        problems=problems,
    )
    return page, status


def _save(
    submission: field_form.Submission,
    change: Callable[[dict[str, Any]], tuple[Pass, Report]],
    pushes: bool = False,
) -> Response | tuple[list[Problem], int]:
    """Make the change and go to the pass; or every problem with it, and a status, for the
    form to show again with what was typed. Nothing is kept of a refused change.

    The change is tried even when some inputs could not be read (they are left out), so that
    one answer lists the problems of the form and of the pass together.
    """
    problems = list(submission.problems)
    status = 400 if problems else 200
    if pushes and not submission.data and not problems:
        flash("Nothing changed: every value is as it was and the JSON box is empty.")
        return redirect(request.url)
    try:
        pass_, report = change(submission.data)
    except PassInvalid as invalid:
        problems += invalid.report.errors
        status = status if status != 200 else 422
    except ApiError as error:
        # The API's paths are in its body, where the data sits under `pass`; the form's
        # are in pass.json, as validation's are.
        path = error.path or "$"
        if path == "$.pass" or path.startswith(("$.pass.", "$.pass[")):
            path = "$" + path.removeprefix("$.pass")
        problems.append(Problem(path, error.message, ""))
        status = status if status != 200 else error.status
    if problems:
        db.session.rollback()
        return problems, status
    db.session.commit()  # devices are pushed on the commit, as after an API change
    warnings = "".join(f" Warning at {w.path}: {w.message}" for w in report.warnings)
    flash(("Saved; devices that hold it are being told." if pushes else "Created.") + warnings)
    return redirect(
        url_for(
            ".pass_detail",
            pass_type_id=pass_.pass_type_identifier,
            serial_number=pass_.serial_number,
        )
    )


@bp.get("/certificates")
def certificates() -> str:
    """Every configured certificate: its pass type and team, whether it is used, its expiry."""
    listed = health.certificate_list(context.runtime().certificates, utcnow())
    return render_template("dashboard/certificates.html", certificates=listed)


@bp.get("/logs")
def device_logs() -> str:
    """What Wallet on devices reported about talking to us (POST /v1/log)."""
    entries = db.session.scalars(
        sa.select(DeviceLogEntry).order_by(DeviceLogEntry.id.desc()).limit(LOG_ROWS)
    ).all()
    return render_template("dashboard/logs.html", entries=entries, limit=LOG_ROWS)


@bp.get("/pushes")
def push_outcomes() -> str:
    """Push outcomes per hour over the last few days, and what is still waiting to be sent."""
    since = utcnow() - timedelta(hours=PUSH_HOURS)
    rows = db.session.scalars(
        sa.select(PushOutcomeCount)
        .where(PushOutcomeCount.hour >= since)
        .order_by(PushOutcomeCount.hour.desc())
    ).all()
    by_hour: dict[datetime, dict[str, int]] = defaultdict(dict)
    for row in rows:
        by_hour[row.hour][row.outcome] = row.count
    totals = {o: sum(counts.get(o, 0) for counts in by_hour.values()) for o in OUTCOMES}
    return render_template(
        "dashboard/pushes.html",
        hours=sorted(by_hour.items(), reverse=True),
        totals=totals,
        outcomes=OUTCOMES,
        pending=pushing.pending_count(),
        window=PUSH_HOURS,
    )


@bp.get("/webhooks")
def webhook_deliveries() -> str:
    """Where events go, and how the latest deliveries went."""
    return render_template(
        "dashboard/webhooks.html",
        endpoints=webhooks.endpoints(),
        backlog=webhooks.backlog(),
        messages=webhooks.recent_messages(WEBHOOK_ROWS),
        limit=WEBHOOK_ROWS,
        display_url=webhooks.display_url,
        state_of=webhooks.state_of,
    )


@bp.route("/templates", methods=["GET", "POST"])
def templates_page() -> Any:
    """Templates with their versions, and an upload: a zip of a template folder (a Pass
    Designer .pkpasstemplate as it is), as PUT /api/templates/{name} takes it."""
    problems: list[Problem] = []
    status = 200
    name = ""
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        upload = request.files.get("zip")
        try:
            if upload is None or not upload.filename:
                raise ValidationError("choose a zip of the template's folder", path="zip")
            files = pass_templates.read_upload(upload.read())
            answer, created = admin.put_template(name, files)
        except PassInvalid as invalid:
            problems, status = invalid.report.errors, 422
        except ApiError as error:
            problems, status = [Problem(error.path or "zip", error.message, "")], error.status
        else:
            if not answer.changed:
                flash(f"Template {name} is unchanged: the upload is its current version.")
            else:
                done = "created" if created else f"changed to version {answer.version}"
                flash(
                    f"Template {name} {done}; {answer.passesUpdated} pass(es) use it and their "
                    "devices are being told."
                    + "".join(f" Warning at {w.path}: {w.message}" for w in answer.warnings)
                )
            return redirect(url_for(".templates_page"))
        db.session.rollback()
    page = render_template(
        "dashboard/templates.html",
        templates=admin.template_list().templates,
        problems=problems,
        name=name,
    )
    return page, status


# --- Errors ---------------------------------------------------------------------------------


@bp.errorhandler(ApiError)
def api_error(error: ApiError) -> tuple[str, int]:
    return render_template("dashboard/error.html", message=error.message), error.status


@bp.errorhandler(429)
def too_many_wrong_tokens(error: HTTPException) -> tuple[str, int]:
    """Throttled (passes/throttling.py): the sign-in page, saying why it refuses for now."""
    return render_template("dashboard/login.html", error=error.description), 429


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException) -> tuple[str, int]:
    message = error.description or error.name
    return render_template("dashboard/error.html", message=message), error.code or 500
