"""Creating, changing and building passes: the operations the admin API and CLI share.

Every change goes through `_new_version()`, which gives the pass its next update tag and
Last-Modified time and records the pushes its devices need, all in the caller's
transaction: committing the change commits the need to push (and, with PUSH_MODE=inline,
starts the pushing: passes/after_commit.py).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite

from models import (
    FILE_NAME_LENGTH,
    SERIAL_NUMBER_LENGTH,
    Device,
    Pass,
    PassFile,
    PassTemplate,
    PendingPush,
    Registration,
    TemplateFile,
    TemplateVersion,
    UpdateCounter,
    db,
    utcnow,
)
from passes import after_commit, context
from passes.building import (
    Identity,
    Template,
    assemble,
    check_file_name,
    check_partial_pass,
    fill_placeholders,
    merge_patch,
)
from passes.errors import Conflict, NotFound, ValidationError
from passes.signing import sign_package
from passes.tokens import authentication_token
from passes.validation import Report, ensure_valid

if TYPE_CHECKING:
    # Only a type here: schemas imports this module.
    from passes.schemas import Expiry

# Serial numbers travel in URL paths, so they keep to characters that need no escaping.
SERIAL_NUMBER = re.compile(rf"[A-Za-z0-9._~:@+=-]{{1,{SERIAL_NUMBER_LENGTH}}}")


# A change that queues this many pushes at once tells the planner that the queue grew
# (`_enqueue_for`); below it, a claim's scan of the whole queue costs under a millisecond.
ANALYZE_QUEUE_AT = 1000

# The name of the job, queued after commit, that pushes in the web process (PUSH_MODE=inline).
INLINE_PUSH = "inline push"


def dialect_insert(table: Any, bind: sa.Connection | None = None) -> Any:
    """An INSERT that knows ON CONFLICT, for the database in use (the session's by default)."""
    if (bind or db.session.get_bind()).dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def next_update_tag() -> int:
    """The first step of every change (to a pass, or to a template its passes follow)."""
    # Takes the counter row's lock until commit: updates get tags in commit order, and
    # concurrent changes to one pass queue up here instead of overwriting each other.
    statement = (
        sa.update(UpdateCounter)
        .where(UpdateCounter.id == 1)
        .values(value=UpdateCounter.value + 1)
        .returning(UpdateCounter.value)
    )
    return db.session.execute(statement).scalar_one()


def _new_version(pass_: Pass, tag: int) -> None:
    now = utcnow()
    previous = pass_.updated_at
    if previous is not None:
        now = max(now, previous)  # a clock stepping back must not make versions go back
        pass_.shares_second_with_previous = int(now.timestamp()) == int(previous.timestamp())
    else:
        pass_.shares_second_with_previous = False
    pass_.updated_at = now
    pass_.update_tag = tag


def _enqueue_pushes(pass_id: int) -> None:
    """Every device holding the pass needs one push; an existing pending one is reused."""
    _enqueue_for(Registration.pass_id == pass_id, utcnow())


def _enqueue_for(registrations: Any, now: datetime) -> None:
    # One push per device and pass type: APNs takes the type as the push's topic, and the
    # device then asks for the changed passes of that type only.
    devices = (
        sa.select(
            Registration.device_id,
            Pass.pass_type_identifier,
            sa.literal(1).label("version"),
            sa.literal(0).label("attempts"),
            sa.literal(now, type_=PendingPush.due_at.type).label("due_at"),
            sa.literal(now, type_=PendingPush.created_at.type).label("created_at"),
        )
        .join(Pass, Pass.id == Registration.pass_id)
        .where(registrations)
    )
    # DISTINCT: a device holding several of the passes must appear once per type, as
    # PostgreSQL's ON CONFLICT cannot update one row twice in a statement. In the order of
    # the rows' keys (device id, then type), as the worker locks the rows of one type it
    # finishes: in any other order, a change and a finishing batch could each hold a row
    # the other waits for (one of them a 500).
    devices = devices.distinct().order_by(Registration.device_id, Pass.pass_type_identifier)
    insert = dialect_insert(PendingPush).from_select(
        ["device_id", "pass_type_identifier", "version", "attempts", "due_at", "created_at"],
        devices,
    )
    # A newer version makes a worker that is sending the old one keep the row (see models).
    insert = insert.on_conflict_do_update(
        index_elements=[PendingPush.device_id, PendingPush.pass_type_identifier],
        set_={"version": PendingPush.version + 1, "attempts": 0, "due_at": now},
    )
    queued = db.session.execute(insert).rowcount
    if queued >= ANALYZE_QUEUE_AT and db.session.get_bind().dialect.name == "postgresql":
        # The worker's claims are planned from the queue's statistics, which describe it as
        # it was when last analyzed: empty, as a rule, before a fan-out. Planned for a few
        # rows, each claim sorted the whole queue (13 ms a claim at 20,000 rows, against
        # 0.7 ms through the due_at index once analyzed; EXPLAIN ANALYZE, BENCHMARKS.md)
        # until autovacuum came round, a minute or more into the fan-out. ANALYZE counts
        # this transaction's rows; without the table's ownership it warns and does nothing.
        db.session.execute(sa.text(f"ANALYZE {PendingPush.__tablename__}"))
    pusher = context.runtime().inline_pusher
    if pusher is not None:
        after_commit.queue(INLINE_PUSH, pusher)


def decode_files(files: Any, path: str = "$.files") -> dict[str, bytes | None]:
    """{"name.png": "<base64>" | null} as sent to the admin API; null removes a file."""
    if files is None:
        return {}
    if not isinstance(files, dict):
        raise ValidationError("must be an object of file name to base64 content", path=path)
    decoded: dict[str, bytes | None] = {}
    for name, content in files.items():
        if content is None:
            # Removing takes any name: a package stored through /api/sign keeps the names
            # its zip had, which this API would not take for a new file.
            decoded[name] = None
            continue
        check_file_name(name, f"{path}.{name}")
        if not isinstance(content, str):
            raise ValidationError("must be a base64 string (or null)", path=f"{path}.{name}")
        try:
            decoded[name] = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError("is not valid base64", path=f"{path}.{name}") from None
    return decoded


def find_pass(pass_type_identifier: str, serial_number: str) -> Pass | None:
    if "\x00" in pass_type_identifier + serial_number:
        return None  # no pass has one, and PostgreSQL refuses NUL in a query
    return db.session.scalar(
        _PASS_BY_KEY, {"pass_type": pass_type_identifier, "serial": serial_number}
    )


# Built once: every device request reads a pass by its key, and building the statement
# anew each time took 5 % of the web processes' CPU in bench/fanout.py (BENCHMARKS.md).
_PASS_BY_KEY = sa.select(Pass).where(
    Pass.pass_type_identifier == sa.bindparam("pass_type"),
    Pass.serial_number == sa.bindparam("serial"),
)


def get_pass(pass_type_identifier: str, serial_number: str) -> Pass:
    found = find_pass(pass_type_identifier, serial_number)
    if found is None:
        raise NotFound(f"no pass {pass_type_identifier}/{serial_number}")
    return found


def create_pass(
    *,
    template: str | None,
    data: Any,
    files: Mapping[str, bytes | None] | None = None,
    serial_number: str | None = None,
    pass_type_identifier: str | None = None,
) -> tuple[Pass, Report]:
    """A new pass of the given type (may be left out when the server has one), validated
    as Wallet would; the caller commits. Returns its warnings."""
    pass_type = context.pass_type(pass_type_identifier)
    data = check_partial_pass({} if data is None else data)
    if template is not None and not isinstance(template, str):
        raise ValidationError("must be a template name", path="$.template")
    if serial_number is None:
        serial_number = uuid.uuid4().hex
    if not isinstance(serial_number, str) or not SERIAL_NUMBER.fullmatch(serial_number):
        raise ValidationError(
            f"must be 1 to {SERIAL_NUMBER_LENGTH} characters of A-Z a-z 0-9 . _ ~ : @ + = -",
            path="$.serialNumber",
        )
    for name in files or {}:
        if len(name) > FILE_NAME_LENGTH:  # a signed package's names come from its zip
            raise ValidationError(
                f"file names have at most {FILE_NAME_LENGTH} characters", path=name
            )
    tag = next_update_tag()
    # After the lock: a template change committing meanwhile is seen, not missed.
    version_id = None if template is None else current_template_version(template).id
    if find_pass(pass_type, serial_number) is not None:
        raise Conflict(f"a pass with serial number {serial_number} already exists")
    pass_ = Pass(
        pass_type_identifier=pass_type,
        serial_number=serial_number,
        template=template,
        template_version_id=version_id,
        data=data,
    )
    pass_.files = [PassFile(name=n, content=c) for n, c in (files or {}).items() if c is not None]
    _new_version(pass_, tag)
    db.session.add(pass_)
    report = check_pass(pass_)  # refuse now what Wallet would refuse later
    db.session.flush()
    return pass_, report


def update_pass(
    pass_type_identifier: str,
    serial_number: str,
    *,
    data: Any = None,
    files: Mapping[str, bytes | None] | None = None,
) -> tuple[Pass, Report]:
    """Merge `data` into the pass, replace `files`, validate, and queue pushes; the caller
    commits. Returns the warnings."""
    patch = check_partial_pass({} if data is None else data)
    tag = next_update_tag()  # first: from here on no one else changes this pass
    pass_ = db.session.scalar(
        sa.select(Pass)
        .where(
            Pass.pass_type_identifier == pass_type_identifier,
            Pass.serial_number == serial_number,
        )
        .execution_options(populate_existing=True)
    )
    if pass_ is None:
        raise NotFound(f"no pass {pass_type_identifier}/{serial_number}")
    pass_.data = merge_patch(pass_.data, patch)
    by_name = {f.name: f for f in pass_.files}
    for name, content in (files or {}).items():
        if content is None:
            if name in by_name:
                pass_.files.remove(by_name[name])
        elif name in by_name:
            by_name[name].content = content
        else:
            pass_.files.append(PassFile(name=name, content=content))
    _new_version(pass_, tag)
    report = check_pass(pass_)
    _enqueue_pushes(pass_.id)
    db.session.flush()
    return pass_, report


def void_pass(pass_type_identifier: str, serial_number: str) -> tuple[Pass, Report]:
    """Void the pass: Wallet shows it as no longer valid. An update, so devices hear of it;
    the caller commits."""
    return update_pass(pass_type_identifier, serial_number, data={"voided": True})


def expire_pass(
    pass_type_identifier: str, serial_number: str, expiry: Expiry
) -> tuple[Pass, Report]:
    """Set `expirationDate` (absent: now); after it Wallet shows the pass as expired. The
    date was checked by the `Expiry` model, so the admin API and `flask passes expire`
    accept the same dates. The caller commits."""
    when = expiry.expirationDate or utcnow().isoformat(timespec="seconds")
    return update_pass(pass_type_identifier, serial_number, data={"expirationDate": when})


def touch_pass(pass_: Pass) -> None:
    """Count a change made elsewhere (for example a push requested by an admin)."""
    _new_version(pass_, next_update_tag())
    _enqueue_pushes(pass_.id)


def template_names() -> list[str]:
    return list(db.session.scalars(sa.select(PassTemplate.name).order_by(PassTemplate.name)))


def current_template_version(name: str) -> TemplateVersion:
    """The newest version of the template `name`, or a 400 listing the templates there are."""
    found = db.session.scalar(
        sa.select(TemplateVersion)
        .join(PassTemplate)
        .where(PassTemplate.name == name)
        .order_by(TemplateVersion.version.desc())
        .limit(1)
    )
    if found is None:
        raise ValidationError(
            f"no template named {name!r}; templates: {', '.join(template_names()) or 'none'}",
            path="$.template",
        )
    return found


def template_of_version(version_id: int) -> Template:
    """A template version as building reads it: kept in the process under its id, which
    names one content forever (models.TemplateVersion), so a hit costs no query."""
    return context.runtime().templates.get(version_id, lambda: _load_template(version_id))


def _load_template(version_id: int) -> Template:
    name, pass_json = db.session.execute(
        sa.select(PassTemplate.name, TemplateVersion.pass_json)
        .join(TemplateVersion.template)
        .where(TemplateVersion.id == version_id)
    ).one()
    rows = db.session.execute(
        sa.select(TemplateFile.name, TemplateFile.content, TemplateFile.digest).where(
            TemplateFile.version_id == version_id
        )
    ).all()
    return Template(
        name, pass_json, {n: c for n, c, _ in rows}, {n: digest for n, _, digest in rows}
    )


def _template_of(pass_: Pass) -> Template | None:
    if pass_.template is None:
        return None
    if pass_.template_version_id is None:
        # Made before templates were kept in the database and not yet moved to one of
        # its versions (importing the template does that).
        return template_of_version(current_template_version(pass_.template).id)
    return template_of_version(pass_.template_version_id)


def pass_json(pass_: Pass) -> dict[str, Any]:
    """The pass's data merged over its template's pass.json, without the keys the service
    sets: what the pass says, read without building its package."""
    template = _template_of(pass_)
    base = template.pass_json if template else {}
    if template is not None and template.has_placeholders:
        base = fill_placeholders(base, pass_.serial_number, pass_.data)
    return merge_patch(base, dict(pass_.data))


def pass_files(pass_: Pass) -> dict[str, bytes]:
    """Every file of the pass's package, pass.json included, unsigned."""
    files, _ = _assemble(pass_)
    return files


def identity_of(pass_type_identifier: str, serial_number: str) -> Identity:
    """What the service puts into the pass.json of this pass."""
    return Identity(
        pass_type_identifier=pass_type_identifier,
        team_identifier=context.credentials(pass_type_identifier).team_identifier,
        serial_number=serial_number,
        web_service_url=context.web_service_url(),
        authentication_token=authentication_token(
            current_app.config["SECRET_KEY"], pass_type_identifier, serial_number
        ),
    )


def _assemble(pass_: Pass) -> tuple[dict[str, bytes], dict[str, str]]:
    identity = identity_of(pass_.pass_type_identifier, pass_.serial_number)
    own_files = {f.name: f.content for f in pass_.files}
    files, digests = assemble(_template_of(pass_), pass_.data, own_files, identity)
    if pass_.personalized_at is not None:
        # Apple: the personalized pass must not offer the sign-up again.
        for name in [n for n in files if n.split("/")[-1].startswith(PERSONALIZATION_FILES)]:
            del files[name]
    return files, digests


PERSONALIZATION_FILES = ("personalization.json", "personalizationLogo")


def is_personalizable(pass_: Pass) -> bool:
    """Whether the pass (from its template or own files) offers rewards enrollment."""
    template = _template_of(pass_)
    names = set(template.files if template else ()) | {f.name for f in pass_.files}
    return "personalization.json" in names


def personalize(pass_: Pass, info: dict[str, str]) -> bool:
    """Store what the user entered and make a new version, so Wallet fetches the
    personalized pass; the caller commits. False if the pass is already personalized."""
    if pass_.personalized_at is not None:
        return False
    tag = next_update_tag()  # first, as in every change: the same lock order everywhere
    # Once only: of requests racing here, the first to commit sets personalized_at and the
    # others' UPDATE, run after it, matches no row.
    claimed = db.session.execute(
        sa.update(Pass)
        .where(Pass.id == pass_.id, Pass.personalized_at.is_(None))
        .values(personalization_info=info, personalized_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        return False
    pass_ = db.session.scalars(
        sa.select(Pass).where(Pass.id == pass_.id).execution_options(populate_existing=True)
    ).one()
    _new_version(pass_, tag)
    _enqueue_pushes(pass_.id)
    return True


def check_pass(pass_: Pass) -> Report:
    """Validate the assembled pass: PassInvalid (422) with every problem, or the warnings."""
    files, _ = _assemble(pass_)
    return ensure_valid(files)


def build_pkpass(pass_: Pass) -> bytes:
    """The signed .pkpass of the pass as it is now."""
    files, digests = _assemble(pass_)
    return sign_package(files, context.credentials(pass_.pass_type_identifier), digests)


def committed_pkpass(pass_: Pass) -> bytes:
    """The signed .pkpass of a pass read as committed, signed once per version and process.

    Only for requests that change nothing: a version built inside a transaction that later
    rolls back would leave bytes under an update tag that the next change reuses.
    """
    # Every change to a pass, its template's included, gives it a new update tag; the
    # template version is part of the key all the same, so bytes are never served for
    # another template content than the pass names. So is the signing certificate.
    signer = context.credentials(pass_.pass_type_identifier).fingerprint
    version = (
        pass_.update_tag,
        pass_.updated_at,
        pass_.template,
        pass_.template_version_id,
        signer,
    )
    cache = context.runtime().signed
    pkpass = cache.get(pass_.id, version)
    if pkpass is None:
        pkpass = build_pkpass(pass_)
        cache.put(pass_.id, version, pkpass)
    return pkpass


def last_modified(updated_at: datetime) -> datetime:
    """Last-Modified for HTTP (whole seconds) of a pass last updated at `updated_at`."""
    return updated_at.replace(microsecond=0)


def touch_all(pass_type_identifier: str | None = None) -> int:
    """Mark every pass with devices (of one type, or all) changed; returns how many."""
    tag = next_update_tag()
    now = utcnow()
    with_devices = sa.select(Registration.pass_id).distinct()
    query = sa.update(Pass).where(Pass.id.in_(with_devices))
    if pass_type_identifier:
        query = query.where(Pass.pass_type_identifier == pass_type_identifier)
    # The previous version may share this second; treat them all as such (see models).
    touched = db.session.execute(
        query.values(update_tag=tag, updated_at=now, shares_second_with_previous=True)
    ).rowcount
    _enqueue_for(Pass.update_tag == tag, now)
    return touched


def move_to_template_version(template: str, version_id: int, tag: int) -> int:
    """Every pass made from `template` moves to its new version with the update tag `tag`
    (taken first, by the caller) and its devices are queued; returns how many moved."""
    now = utcnow()
    # As touch_all: the previous version may share this second (see models.Pass).
    moved = db.session.execute(
        sa.update(Pass)
        .where(Pass.template == template)
        .values(
            template_version_id=version_id,
            update_tag=tag,
            updated_at=now,
            shares_second_with_previous=True,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved:
        _enqueue_for(
            Registration.pass_id.in_(sa.select(Pass.id).where(Pass.template == template)), now
        )
    return moved


def count_registrations(pass_: Pass) -> int:
    """How many devices hold the pass."""
    return (
        db.session.scalar(sa.select(sa.func.count()).where(Registration.pass_id == pass_.id)) or 0
    )


def registrations_of(
    pass_: Pass, limit: int | None = None, offset: int = 0, extra: Sequence[Any] = ()
) -> list[Any]:
    """(device, registered at, device id if a push is pending, *extra columns) for each
    device holding it, oldest registration first (id breaks ties, so pages neither repeat
    nor skip one)."""
    query = (
        sa.select(Device, Registration.created_at, PendingPush.device_id, *extra)
        .join(Registration, Registration.device_id == Device.id)
        .outerjoin(
            PendingPush,
            sa.and_(
                PendingPush.device_id == Device.id,
                PendingPush.pass_type_identifier == pass_.pass_type_identifier,
            ),
        )
        .where(Registration.pass_id == pass_.id)
        .order_by(Registration.created_at, Registration.id)
        .limit(limit)
        .offset(offset)
    )
    return list(db.session.execute(query).all())
