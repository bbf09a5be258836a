"""`flask passes ...`: the admin operations from the command line."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
import sqlalchemy as sa
from flask import Blueprint, Flask, current_app
from flask.cli import AppGroup
from pydantic import BaseModel

from models import Pass, db
from passes import (
    admin,
    after_commit,
    bundles,
    context,
    distribution,
    doctor,
    links,
    packages,
    pass_templates,
    pushing,
    store,
    webhooks,
)
from passes.credentials import load_certificate
from passes.errors import ApiError, ValidationError
from passes.outages import Outage
from passes.schemas import (
    MAX_PAGE,
    DeviceLogs,
    DeviceRegistration,
    Expiry,
    NewWebhook,
    Registrations,
    validate,
)
from passes.validation import MAX_JSON_DEPTH, PassInvalid, Problem, Report
from passes.verify import verify_pkpass


class _Commands(AppGroup):
    """The `passes` group: a database that cannot be used (no tables yet, not reachable)
    is reported in a line, like every other mistake, not with a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as error:
            reason = str(error.orig).strip().splitlines()[0]
            raise click.ClickException(
                f"the database cannot be used ({reason}). If its tables are missing, run "
                "`flask db upgrade` (`python app.py` does it when it starts)."
            ) from None


bp = Blueprint("passes", __name__, cli_group="passes")
bp.cli = _Commands()


def _load_json(text: str | None, file: Path | None) -> Any:
    if text is not None and file is not None:
        raise click.UsageError("give --data or --data-file, not both")
    source = file.read_text(encoding="utf-8") if file else text
    if source is None:
        return None
    try:
        return json.loads(source)
    except ValueError as error:
        raise click.BadParameter(f"not valid JSON: {error}") from None
    except RecursionError:
        raise click.BadParameter(f"nests more than {MAX_JSON_DEPTH} levels deep") from None


def _files(paths: tuple[Path, ...]) -> dict[str, bytes | None]:
    """--file NAME=PATH pairs, e.g. --file thumbnail.png=./face.png."""
    files: dict[str, bytes | None] = {}
    for pair in paths:
        name, _, path = str(pair).partition("=")
        if not path:
            raise click.BadParameter(
                f"{pair}: use NAME=PATH, e.g. thumbnail.png=./face.png", param_hint="--file"
            )
        try:
            files[name] = Path(path).read_bytes()
        except OSError as error:
            raise click.BadParameter(
                f"{path} cannot be read ({error.strerror})", param_hint="--file"
            ) from None
    return files


def _write(output: Path, data: bytes) -> None:
    try:
        output.write_bytes(data)
    except OSError as error:
        raise click.ClickException(f"cannot write {output} ({error.strerror})") from None


def _fail(error: ApiError | PassInvalid) -> NoReturn:
    db.session.rollback()
    if isinstance(error, PassInvalid):
        click.echo("the pass would be refused by Wallet:", err=True)
        for problem in error.report.errors:
            click.echo(f"  {problem.path}: {problem.message} ({problem.fix})", err=True)
    else:
        where = f" ({error.path})" if error.path else ""
        click.echo(f"error{where}: {error.message}", err=True)
    sys.exit(1)


def _warn(report: Report) -> None:
    for problem in report.warnings:
        click.echo(f"warning: {problem.path}: {problem.message} ({problem.fix})", err=True)


def _pass_type(pass_type_id: str | None) -> str:
    """The pass type a command acts on: --type, when it is one this server signs, or the
    only one there is (context.pass_type decides)."""
    try:
        return context.pass_type(pass_type_id)
    except ValidationError as error:
        raise click.BadParameter(error.message, param_hint="--type") from None


def _note_development_chain() -> None:
    if context.runtime().development_chain:
        click.echo(
            "note: signed with the development certificate, which iPhones refuse; set "
            "PASS_CERTIFICATE and WWDR_CERTIFICATE to sign passes they accept",
            err=True,
        )


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _dumped(model: BaseModel) -> dict[str, Any]:
    """A response model as the admin API sends it."""
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)


data_option = click.option("--data", help="partial pass.json as JSON text")
data_file_option = click.option(
    "--data-file", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
file_option = click.option("--file", "files", multiple=True, type=Path, help="NAME=PATH")
type_option = click.option(
    "--type",
    "pass_type_id",
    metavar="PASS_TYPE_ID",
    help="the pass's type (may be left out when the server has one)",
)
SHOWN_DEVICES = 10  # `show` lists the first few; `registrations` lists them all
json_option = click.option("--json", "as_json", is_flag=True, help="as the admin API's JSON")
limit_option = click.option(
    "--limit", default=100, show_default=True, type=click.IntRange(1, MAX_PAGE)
)


@bp.cli.command("create")
@click.option("--template", help="template name, e.g. storecard (flask passes templates list)")
@click.option("--serial", help="serial number (generated when absent)")
@type_option
@data_option
@data_file_option
@file_option
def create_command(
    template: str | None,
    serial: str | None,
    pass_type_id: str | None,
    data: str | None,
    data_file: Path | None,
    files: tuple[Path, ...],
) -> None:
    """Create a pass from a template and per-pass data."""
    try:
        pass_, report = store.create_pass(
            template=template,
            data=_load_json(data, data_file),
            files=_files(files),
            serial_number=serial,
            pass_type_identifier=_pass_type(pass_type_id),
        )
        db.session.commit()
    except (ApiError, PassInvalid) as error:
        _fail(error)
    _warn(report)
    _note_development_chain()
    click.echo(f"created {pass_.pass_type_identifier} {pass_.serial_number}")
    click.echo(f"download link: {links.download_url(pass_)}")


@bp.cli.command("update")
@click.argument("serial")
@type_option
@data_option
@data_file_option
@file_option
def update_command(
    serial: str,
    pass_type_id: str | None,
    data: str | None,
    data_file: Path | None,
    files: tuple[Path, ...],
) -> None:
    """Merge partial pass.json into a pass; its devices are told to fetch it."""
    try:
        pass_, report = store.update_pass(
            _pass_type(pass_type_id),
            serial,
            data=_load_json(data, data_file),
            files=_files(files),
        )
        db.session.commit()
    except (ApiError, PassInvalid) as error:
        _fail(error)
    _warn(report)
    click.echo(f"updated {pass_.serial_number} (update tag {pass_.update_tag})")


@bp.cli.command("export")
@click.argument("serial")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
@type_option
def export_command(serial: str, output: Path | None, pass_type_id: str | None) -> None:
    """Write the signed .pkpass of a pass to a file (SERIAL.pkpass by default)."""
    try:
        pkpass = store.build_pkpass(store.get_pass(_pass_type(pass_type_id), serial))
    except (ApiError, PassInvalid) as error:
        _fail(error)
    output = output or Path(f"{serial}.pkpass")
    _write(output, pkpass)
    _note_development_chain()
    click.echo(f"wrote {output} ({len(pkpass)} bytes)")


@bp.cli.command("show")
@click.argument("serial")
@type_option
@json_option
def show_command(serial: str, pass_type_id: str | None, as_json: bool) -> None:
    """A pass: its state, data, files, devices and the link to hand to its customer."""
    try:
        pass_ = store.get_pass(_pass_type(pass_type_id), serial)
        description = admin.describe(pass_)
        devices = admin.registration_entries(pass_, SHOWN_DEVICES)
        preview = distribution.preview(pass_)
    except (ApiError, PassInvalid) as error:
        _fail(error)
    if as_json:
        _echo_json(_dumped(description))
        return
    state = ["voided" if preview.voided else "expired" if preview.expired else "valid"]
    if description.personalized:
        state.append("personalized")
    click.echo(f"{description.passTypeIdentifier} {description.serialNumber}")
    click.echo(f"state:         {', '.join(state)}")
    click.echo(f"template:      {description.template or '-'}")
    click.echo(f"changed:       {description.updatedAt} (update tag {description.updateTag})")
    click.echo(f"files:         {', '.join(description.files) or '-'}")
    click.echo(f"download link: {description.downloadURL}")
    click.echo(f"devices:       {description.devices}")
    for device in devices:
        click.echo("  " + _device_line(device))
    if description.devices > len(devices):
        more = description.devices - len(devices)
        click.echo(f"  ... and {more} more (flask passes registrations {serial} --limit N)")
    click.echo("data (merged over the template's pass.json):")
    click.echo(json.dumps(description.pass_, indent=2, ensure_ascii=False))


def _device_line(device: DeviceRegistration) -> str:
    pending = "\tpush pending" if device.pushPending else ""
    return (
        f"{device.deviceLibraryIdentifier}\ttoken {device.pushTokenPrefix}...\t"
        f"registered {device.registeredAt}{pending}"
    )


@bp.cli.command("void")
@click.argument("serial")
@type_option
def void_command(serial: str, pass_type_id: str | None) -> None:
    """Void a pass: Wallet shows it as no longer valid; its devices are told."""
    try:
        pass_, report = store.void_pass(_pass_type(pass_type_id), serial)
        db.session.commit()
    except (ApiError, PassInvalid) as error:
        _fail(error)
    _warn(report)
    click.echo(f"voided {pass_.serial_number} (update tag {pass_.update_tag})")


@bp.cli.command("expire")
@click.argument("serial")
@click.option(
    "--date",
    "when",
    metavar="DATETIME",
    help="ISO 8601 with a time zone, e.g. 2026-12-31T23:59:00Z (default: now)",
)
@type_option
def expire_command(serial: str, when: str | None, pass_type_id: str | None) -> None:
    """Set a pass's expiration date (default now); its devices are told."""
    try:
        # The admin API's body model: the same dates are accepted here as there.
        expiry = validate(Expiry, {} if when is None else {"expirationDate": when})
        pass_, report = store.expire_pass(_pass_type(pass_type_id), serial, expiry)
        db.session.commit()
    except (ApiError, PassInvalid) as error:
        _fail(error)
    _warn(report)
    click.echo(f"{pass_.serial_number} expires {pass_.data['expirationDate']}")


@bp.cli.command("registrations")
@click.argument("serial")
@type_option
@limit_option
@json_option
def registrations_command(serial: str, pass_type_id: str | None, limit: int, as_json: bool) -> None:
    """The devices that hold a pass, oldest registration first."""
    try:
        entries = admin.registration_entries(
            store.get_pass(_pass_type(pass_type_id), serial), limit
        )
    except ApiError as error:
        _fail(error)
    if as_json:
        _echo_json(_dumped(Registrations(registrations=entries)))
        return
    for device in entries:
        click.echo(_device_line(device))
    if not entries:
        click.echo("no device holds this pass", err=True)


@bp.cli.command("logs")
@limit_option
@json_option
def logs_command(limit: int, as_json: bool) -> None:
    """The newest messages devices sent to the web service's log endpoint."""
    entries = admin.log_entries(limit)
    if as_json:
        _echo_json(_dumped(DeviceLogs(logs=entries)))
        return
    for entry in entries:
        click.echo(f"{entry.receivedAt}\t{entry.message}")


@bp.cli.command("list")
@click.option("--limit", default=50, show_default=True)
def list_command(limit: int) -> None:
    """The most recently changed passes."""
    passes = db.session.scalars(sa.select(Pass).order_by(Pass.update_tag.desc()).limit(limit))
    for p in passes:
        click.echo(
            f"{p.pass_type_identifier}\t{p.serial_number}\t{p.template or '-'}\t"
            f"{p.updated_at.isoformat(timespec='seconds')}"
        )


@bp.cli.command("push")
@click.argument("serial", required=False)
@type_option
@click.option("--all", "everything", is_flag=True, help="every pass (of --type, if given)")
def push_command(serial: str | None, pass_type_id: str | None, everything: bool) -> None:
    """Tell the devices holding a pass (or every pass, with --all) to fetch it now.

    Wallet only downloads passes whose update tag moved, so pushing counts as an update:
    the passes get a new tag and Last-Modified, and their devices are queued and pushed.
    Where workers push (PUSH_MODE=worker), they send them, at their pace.
    """
    if everything == bool(serial):
        raise click.UsageError("give SERIAL, or --all [--type PASS_TYPE_ID]")
    try:
        if everything:
            touched = store.touch_all(pass_type_id and _pass_type(pass_type_id))
        else:
            store.touch_pass(store.get_pass(_pass_type(pass_type_id), serial or ""))
            touched = 1
        # Sent below, with a progress bar, rather than by the inline pusher beside it.
        after_commit.discard(store.INLINE_PUSH)
        db.session.commit()
        pending = pushing.pending_count()
        click.echo(f"{touched} passes marked changed; {pending} devices to push")
        if current_app.config["PUSH_MODE"] == "worker":
            # Sending from here as well would push at twice the pace beside the workers,
            # and wake phones faster than the web tier serves them (bench/fanout.py).
            click.echo("the workers (flask passes worker) send them")
            return
        with click.progressbar(length=pending, label="pushing") as bar:
            summary = pushing.drain_now(progress=bar.update)
    except ApiError as error:
        _fail(error)
    click.echo(summary.line())
    if summary.certificate_rejected:
        sys.exit(1)


@bp.cli.command("worker")
@click.option("--once", is_flag=True, help="send what is pending, then exit")
def worker_command(once: bool) -> None:
    """Send pending pushes as they appear (run one or more, on any machines)."""
    context.certificates()  # fail now, readably, when nothing could be pushed
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if once:
        click.echo(pushing.drain_now().line())
        click.echo(webhooks.deliver_now(app).line())
        return
    click.echo("worker started; SIGTERM or Ctrl-C to stop")
    pushed, delivered = asyncio.run(_work_until_signalled(app))
    click.echo(f"worker stopped: {pushed.line()}; {delivered.line()}")


async def _work_until_signalled(
    app: Flask,
) -> tuple[pushing.PushSummary, webhooks.DeliverySummary]:
    # Heroku sends SIGTERM on every restart and deploy, and SIGKILL 30 s later: the worker
    # stops taking work, finishes or hands back what it holds, and exits with status 0.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Two tasks: a webhook receiver that is slow or down never holds up a push. A database
    # outage holds up both, and is logged once.
    outage = Outage("pushes and webhook deliveries")
    pushed, delivered = await asyncio.gather(
        pushing.work_forever(app, stop, outage), webhooks.deliver_forever(app, stop, outage)
    )
    return pushed, delivered


@bp.cli.command("bundle")
@click.argument("serials", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@type_option
def bundle_command(serials: tuple[str, ...], output: Path, pass_type_id: str | None) -> None:
    """Write several passes into one .pkpasses bundle."""
    try:
        pass_type = _pass_type(pass_type_id)
        keys = bundles.parse_pass_list(
            [{"passTypeIdentifier": pass_type, "serialNumber": s} for s in serials]
        )
        data = bundles.build_bundle([store.get_pass(t, s) for t, s in keys])
    except (ApiError, PassInvalid) as error:
        _fail(error)
    _write(output, data)
    _note_development_chain()
    click.echo(f"wrote {output} ({len(serials)} passes)")


@bp.cli.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--root",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="check the WWDR against this root (Apple Root CA, PEM or DER)",
)
def verify_command(file: Path, root: Path | None) -> None:
    """Check a .pkpass the way Wallet would; exit status 1 when anything fails."""
    try:
        roots = [load_certificate(root.read_bytes())] if root else None
    except ValueError:
        raise click.BadParameter(f"{root} is not a certificate (PEM or DER)") from None
    report = verify_pkpass(file.read_bytes(), trusted_roots=roots)
    click.echo(report.render())
    if not report.ok:
        sys.exit(1)


@bp.cli.command("sign")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
def sign_command(folder: Path, output: Path) -> None:
    """Validate a pass folder (pass.json, images, xx.lproj/) and sign it into a .pkpass."""
    try:
        pkpass, report = packages.sign_unsigned(
            packages.read_folder(folder), context.certificates()
        )
    except (ApiError, PassInvalid) as error:
        _fail(error)
    _warn(report)
    _write(output, pkpass)
    _note_development_chain()
    click.echo(f"wrote {output} ({len(pkpass)} bytes)")


@bp.cli.command("doctor")
@click.argument("serial")
@click.option("--type", "pass_type_id", help="pass type identifier, when several have SERIAL")
def doctor_command(serial: str, pass_type_id: str | None) -> None:
    """Walk the chain from this server to the phones and name the first broken link.

    Exit status 0 when every registered device holds the current version, 1 otherwise.
    """
    query = sa.select(Pass).where(Pass.serial_number == serial)
    if pass_type_id:
        query = query.where(Pass.pass_type_identifier == pass_type_id)
    found = db.session.scalars(query.limit(2)).all()
    if len(found) != 1:
        problem = "no pass has" if not found else "several pass types have"
        click.echo(f"error: {problem} serial number {serial!r}; give --type", err=True)
        sys.exit(2 if found else 1)
    diagnosis = doctor.diagnose(found[0])
    click.echo("\n".join(doctor.report_lines(diagnosis)))
    if not diagnosis.all_current:
        sys.exit(1)


@bp.cli.group("webhooks")
def webhooks_group() -> None:
    """Where events go: endpoints, and how the latest deliveries went."""


@webhooks_group.command("list")
@json_option
def webhooks_list(as_json: bool) -> None:
    """The endpoints (env is WEBHOOK_URL's) and the messages waiting."""
    found = admin.webhook_endpoints()
    if as_json:
        _echo_json(_dumped(found))
        return
    for endpoint in found.endpoints:
        events = ", ".join(endpoint.events) if endpoint.events else "every event"
        click.echo(f"{endpoint.id}\t{endpoint.url}\t{events}")
    if not found.endpoints:
        click.echo("no endpoint: set WEBHOOK_URL and WEBHOOK_SECRET, or add one", err=True)
    backlog = found.backlog
    click.echo(f"{backlog.undelivered} waiting to be delivered, {backlog.failing} failing")


@webhooks_group.command("add")
@click.argument("url")
@click.option(
    "--event",
    "events",
    multiple=True,
    type=click.Choice(webhooks.EVENT_TYPES),
    help="an event type it gets (repeatable; default: every type)",
)
@click.option("--secret", help="its signing secret (default: one is made and shown once)")
@json_option
def webhooks_add(url: str, events: tuple[str, ...], secret: str | None, as_json: bool) -> None:
    """Send events to one more endpoint; prints its id and secret (shown this once)."""
    body = {"url": url, "events": list(events) or None, "secret": secret}
    try:
        added = admin.added_webhook(validate(NewWebhook, body))
    except ApiError as error:
        _fail(error)
    if as_json:
        _echo_json(_dumped(added))
        return
    click.echo(f"added endpoint {added.id}; its secret (shown this once): {added.secret}")


@webhooks_group.command("remove")
@click.argument("endpoint_id", type=click.IntRange(1))
def webhooks_remove(endpoint_id: int) -> None:
    """Stop sending events to an endpoint; its undelivered messages go with it."""
    try:
        webhooks.remove_endpoint(endpoint_id)
    except ApiError as error:
        _fail(error)
    db.session.commit()
    click.echo(f"removed endpoint {endpoint_id}")


@webhooks_group.command("messages")
@limit_option
@json_option
def webhooks_messages(limit: int, as_json: bool) -> None:
    """The newest messages, delivered, failing or waiting."""
    found = admin.webhook_deliveries(limit)
    if as_json:
        _echo_json(_dumped(found))
        return
    for m in found.messages:
        detail = m.deliveredAt if m.state == "delivered" else (m.lastError or "")
        click.echo(f"{m.queuedAt}\t{m.type}\t{m.endpoint}\t{m.state}\t{detail}".rstrip())


@bp.cli.group("templates")
def templates_group() -> None:
    """Templates kept in the database: list, show, put, remove, import folders."""


@templates_group.command("list")
@json_option
def templates_list(as_json: bool) -> None:
    """Every template: its version, when it changed, how many passes use it."""
    found = admin.template_list()
    if as_json:
        _echo_json(_dumped(found))
        return
    for t in found.templates:
        click.echo(f"{t.name}\tversion {t.version}\t{t.updatedAt}\t{t.source}\t{t.passes} passes")
    if not found.templates:
        click.echo("no template: put one, or import a folder", err=True)


@templates_group.command("show")
@click.argument("name")
@json_option
def templates_show(name: str, as_json: bool) -> None:
    """A template's version, files and pass.json."""
    try:
        found = admin.template_description(name)
    except ApiError as error:
        _fail(error)
    if as_json:
        _echo_json(_dumped(found))
        return
    click.echo(f"template:  {found.name}")
    click.echo(f"version:   {found.version} ({found.source}, {found.updatedAt})")
    click.echo(f"passes:    {found.passes}")
    click.echo(f"files:     {', '.join(found.files) or '-'}")
    click.echo("pass.json:")
    _echo_json(found.pass_)


@templates_group.command("put")
@click.argument("name")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@json_option
def templates_put(name: str, path: Path, as_json: bool) -> None:
    """Create or change template NAME from PATH: a folder, or a zip of one (a Pass
    Designer .pkpasstemplate as it is). Its passes move to the new version and are pushed."""
    try:
        if path.is_dir():
            files = pass_templates.read_folder(path)
        else:
            files = pass_templates.read_upload(path.read_bytes())
        answer, created = admin.put_template(name, files)
    except (ApiError, PassInvalid) as error:
        _fail(error)
    _warn(Report(warnings=[Problem(**w.model_dump()) for w in answer.warnings]))
    if as_json:
        _echo_json(_dumped(answer))
    elif not answer.changed:
        click.echo(f"template {name} unchanged (version {answer.version})")
    else:
        what = "created" if created else f"changed to version {answer.version}"
        click.echo(f"template {name} {what}; {answer.passesUpdated} pass(es) updated")


@templates_group.command("remove")
@click.argument("name")
def templates_remove(name: str) -> None:
    """Delete a template that no pass uses (a folder in PASS_TEMPLATES_DIR comes back at
    the next start: remove the folder too)."""
    try:
        pass_templates.remove_template(name)
    except ApiError as error:
        _fail(error)
    db.session.commit()
    click.echo(f"removed template {name}")


@templates_group.command("import")
@click.argument(
    "folder", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
def templates_import(folder: Path | None) -> None:
    """Import template folders that are new or changed since their last import: FOLDER
    (one template, or a folder of them; default PASS_TEMPLATES_DIR)."""
    folder = folder or Path(current_app.config["PASS_TEMPLATES_DIR"])
    try:
        results = pass_templates.import_folders(folder)
    except (ApiError, PassInvalid) as error:
        _fail(error)
    for name, change in results.items():
        if change is None:
            click.echo(f"{name}: unchanged")
        else:
            click.echo(
                f"{name}: version {change.version.version}, {change.passes} pass(es) updated"
            )
    if not results:
        click.echo(f"no template folder (with a pass.json) in {folder}", err=True)
        sys.exit(1)
