"""Templates kept in the database: uploaded, checked, versioned, imported from folders.

Heroku rebuilds the file system at every deploy, so templates live in the database. A
template is a name and its versions; a version holds pass.json and the files, and is never
changed once written. Changing a template writes a new version and, in the same
transaction, moves every pass made from it to that version with a new update tag and
queues its devices for a push (store.py's rules for any change to a pass), so a changed
image reaches the phones without anyone remembering `flask passes push --all`.

The folders in PASS_TEMPLATES_DIR are imported when the app starts and by
`flask passes templates import`: a folder is taken when its template is absent, or when
its content differs from what was last imported from the folder (a digest of the content,
so restarts write nothing and push nobody, and a template changed through the API since
stays as it is until the folder itself changes).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from models import (
    FILE_NAME_LENGTH,
    Pass,
    PassFile,
    PassTemplate,
    TemplateFile,
    TemplateVersion,
    db,
)
from passes import context, packages, store
from passes.building import (
    PACKAGE_FILE_NAME,
    TEMPLATE_NAME,
    Identity,
    PlaceholderError,
    Template,
    assemble,
    data_placeholder_names,
    data_placeholder_paths,
    fill_placeholders,
    lookup,
)
from passes.errors import Conflict, NotFound, ValidationError
from passes.json_body import json_object
from passes.signing import sha1_hex
from passes.validation import (
    TOOLING_FILE,
    PassInvalid,
    Problem,
    Report,
    load_json,
    validate_package,
)

log = logging.getLogger(__name__)

FOLDER = "folder"
UPLOAD = "upload"
# Pass Designer saves a template as a folder with this suffix; its name is the template's.
DESIGNER_SUFFIX = ".pkpasstemplate"
# What a template is checked with when the service has no certificate to say its own.
SAMPLE_IDENTITY = Identity(
    pass_type_identifier="pass.com.example.template",
    team_identifier="ABCDE12345",
    serial_number="template-check",
    web_service_url="https://passes.example.com/wallet",
    authentication_token="a-token-of-at-least-sixteen-characters",
)
# Passes named in a refusal of a template change (all of them are counted).
SHOWN_PASSES = 10
# Versions kept of each template, the current one included (older ones are deleted).
KEPT_VERSIONS = 10


@dataclass(frozen=True)
class Checked:
    """A template's content as checked: pass.json parsed, the other files, the warnings."""

    pass_json: dict[str, Any]
    files: dict[str, bytes]
    report: Report

    @property
    def digest(self) -> str:
        return content_digest(self.pass_json, self.files)


@dataclass(frozen=True)
class Change:
    """What a put did: the version now current, whether it is new, and how many passes
    moved to it."""

    version: TemplateVersion
    created: bool
    changed: bool
    passes: int
    report: Report


def content_digest(pass_json: dict[str, Any], files: dict[str, bytes]) -> str:
    """SHA-256 over pass.json as JSON values (its spacing and key order do not count) and
    every file's name and content."""
    hashed = {name: hashlib.sha256(content).hexdigest() for name, content in files.items()}
    canonical = json.dumps([pass_json, hashed], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_name(name: str) -> str:
    if not isinstance(name, str) or not TEMPLATE_NAME.fullmatch(name):
        raise ValidationError(
            "a template name is 1 to 64 of A-Z a-z 0-9 _ - (starting with a letter or digit)",
            path="name",
        )
    return name


def read_upload(data: bytes) -> dict[str, bytes]:
    """The files of a zipped template folder, a Pass Designer `.pkpasstemplate` as it is
    included (its single top folder is unwrapped, tooling.json left out). The limits are
    those of any uploaded package (passes/packages.py)."""
    return without_tooling(packages.read_zip(data))


def read_folder(folder: Path) -> dict[str, bytes]:
    if not (folder / "pass.json").is_file():
        raise ValidationError(f"{folder} has no pass.json, so it is not a template folder")
    return without_tooling(packages.read_folder(folder))


def without_tooling(files: dict[str, bytes]) -> dict[str, bytes]:
    # Pass Designer's record of the template: not part of a pass.
    return {name: content for name, content in files.items() if name != TOOLING_FILE}


def check_template(files: dict[str, bytes]) -> Checked:
    """Check a template as a pass made from it is checked, every problem at once.

    It is assembled as a pass (the service's identifiers filled in, `{{serialNumber}}` with
    a sample) and validated. A value holding a `{{data...}}` placeholder is known only for
    each pass, so what validation says of it is a warning here; each pass is checked in
    full when it is made or changed. PassInvalid (422) with every error.
    """
    report = Report()
    for name in files:
        if name != "pass.json" and (
            not PACKAGE_FILE_NAME.fullmatch(name) or len(name) > FILE_NAME_LENGTH
        ):
            report.error(
                name,
                f"The file name {name!r} cannot be part of a template.",
                "Use names like icon.png, strip@2x.png or fr.lproj/pass.strings.",
            )
    pass_json, unreadable = None, None
    if "pass.json" in files:
        try:
            # As strictly as a request body: it is stored and re-encoded for each pass, so
            # a lone surrogate or a number past a double is refused here, not met later.
            pass_json = json_object(files["pass.json"], "pass.json", "pass.json")
        except ValidationError as error:
            unreadable = Problem(
                error.path or "pass.json",
                f"{error.message}.",
                "Escapes such as \\ud800 must come in pairs that make one character.",
            )
    if pass_json is None:
        # What validation says of the package, pass.json's problem in its words if it has
        # them (and the images' problems with it).
        found = validate_package(files)
        if unreadable and "pass.json" in files:
            loaded = Report()
            parsed = load_json(files["pass.json"], "pass.json", loaded)
            if not loaded.errors and isinstance(parsed, dict):
                # Read by validation, refused by the strict reader: a lone surrogate.
                report.errors.append(unreadable)
        report.errors.extend(found.errors)
        report.warnings.extend(found.warnings)
    else:
        try:
            filled = fill_placeholders(pass_json, SAMPLE_IDENTITY.serial_number, None)
        except PlaceholderError as error:
            report.error(
                error.path or "pass.json",
                f"The value {error.message}.",
                "Write {{serialNumber}} or {{data.some.key}}; \\{{ is a literal '{{'.",
            )
            filled = pass_json
        others = {n: c for n, c in files.items() if n != "pass.json"}
        package, _ = assemble(None, filled, others, _identity())
        found = validate_package(package)
        per_pass = data_placeholder_paths(pass_json)
        report.errors.extend(p for p in found.errors if p.path not in per_pass)
        report.warnings.extend(found.warnings)
        report.warnings.extend(
            Problem(
                p.path,
                f"{p.message} (With the placeholder as written; each pass is checked with "
                "its own value.)",
                p.fix,
            )
            for p in found.errors
            if p.path in per_pass
        )
    if report.errors:
        raise PassInvalid(report)
    return Checked(pass_json, {n: c for n, c in files.items() if n != "pass.json"}, report)


def _identity() -> Identity:
    # A template serves every pass type: checked as a pass of the first one would be.
    in_use = context.runtime().certificates.in_use
    if not in_use:
        return SAMPLE_IDENTITY
    credentials = next(iter(in_use.values()))
    return Identity(
        pass_type_identifier=credentials.pass_type_identifier,
        team_identifier=credentials.team_identifier,
        serial_number=SAMPLE_IDENTITY.serial_number,
        web_service_url=context.web_service_url(),
        authentication_token=SAMPLE_IDENTITY.authentication_token,
    )


def find_template(name: str) -> PassTemplate | None:
    return db.session.scalar(sa.select(PassTemplate).where(PassTemplate.name == name))


def get_template(name: str) -> PassTemplate:
    found = find_template(check_name(name))
    if found is None:
        raise NotFound(f"no template named {name!r}")
    return found


def current_version(template: PassTemplate) -> TemplateVersion:
    return template.versions[-1]


def passes_using(name: str) -> int:
    return db.session.scalar(sa.select(sa.func.count()).where(Pass.template == name)) or 0


def put_template(name: str, files: dict[str, bytes], source: str = UPLOAD) -> Change:
    """Make `files` the template `name`'s content: a new version when it differs from the
    current one, every pass made from it moved to that version and pushed. The caller
    commits; on any error nothing was written."""
    check_name(name)
    checked = check_template(files)
    digest = checked.digest
    # First: the update counter's lock orders this change with every change to a pass, and
    # with another put of the same template (two servers importing at once): the second
    # waits here, then finds the first's version below.
    tag = store.next_update_tag()
    template = db.session.scalar(
        sa.select(PassTemplate)
        .where(PassTemplate.name == name)
        .execution_options(populate_existing=True)
    )
    created = template is None
    if template is None:
        template = PassTemplate(name=name)
        db.session.add(template)
        db.session.flush()
    # Read now, under the lock, whatever this session held before.
    previous = db.session.scalar(
        sa.select(TemplateVersion)
        .where(TemplateVersion.template_id == template.id)
        .order_by(TemplateVersion.version.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    )
    if previous is not None and previous.digest == digest:
        return Change(previous, created=False, changed=False, passes=0, report=checked.report)
    try:
        _check_passes(name, checked)
    except PassInvalid as invalid:
        if source != FOLDER:
            raise
        # A folder is what the deploy brought; its passes were served from it before
        # templates were kept here. Refusing it would leave them with no template at all.
        summary, *problems = invalid.report.errors
        log.warning(
            "template %s imported from its folder although %s: %s",
            name,
            summary.message.partition(";")[0],
            "; ".join(f"{p.path}: {p.message}" for p in problems),
        )
    version = TemplateVersion(
        template=template,
        version=(previous.version + 1) if previous else 1,
        pass_json=checked.pass_json,
        digest=digest,
        source=source,
        files=[
            TemplateFile(name=n, content=c, digest=sha1_hex(c))
            for n, c in sorted(checked.files.items())
        ],
    )
    db.session.add(version)
    db.session.flush()
    moved = store.move_to_template_version(name, version.id, tag)
    _forget_old_versions(template, version.version)
    return Change(version, created=created, changed=True, passes=moved, report=checked.report)


def _check_passes(name: str, checked: Checked) -> None:
    """Refuse a change that would leave passes made from the template invalid (their data
    lacks a key a placeholder names, or no longer fits: a style changed under it), every
    pass checked as it will be built. Passes whose data has the same shape (its keys and
    kinds of values, and the values the placeholders take) build alike and are checked
    once; a pass with files of its own is checked by itself."""
    template = Template(name, checked.pass_json, checked.files, {})
    placeholders = sorted(data_placeholder_names(checked.pass_json))
    with_files = set(
        db.session.scalars(
            sa.select(PassFile.pass_id).join(Pass).where(Pass.template == name).distinct()
        )
    )
    groups: dict[str, list[tuple[int, str, str, dict[str, Any]]]] = {}
    rows = db.session.execute(
        sa.select(Pass.id, Pass.pass_type_identifier, Pass.serial_number, Pass.data)
        .where(Pass.template == name)
        .order_by(Pass.id)  # the oldest of a shape speaks for it, whatever the database
    ).yield_per(1000)
    for pass_id, pass_type_identifier, serial_number, data in rows:
        key = (
            f"own files {pass_id}"
            if pass_id in with_files
            else json.dumps([_shape(data), [_value_at(data, p) for p in placeholders]])
        )
        groups.setdefault(key, []).append((pass_id, pass_type_identifier, serial_number, data))
    problems: list[Problem] = []
    failed = 0
    for members in groups.values():
        pass_id, pass_type_identifier, serial_number, data = members[0]
        own = {}
        if pass_id in with_files:
            own = dict(
                db.session.execute(
                    sa.select(PassFile.name, PassFile.content).where(PassFile.pass_id == pass_id)
                ).all()
            )
        identity = store.identity_of(pass_type_identifier, serial_number)
        try:
            package, _ = assemble(template, data, own, identity)
            errors = validate_package(package).errors
        except PlaceholderError as error:
            errors = [Problem(error.path or "pass.json", f"The value {error.message}.", "")]
        if not errors:
            continue
        failed += len(members)
        for problem in errors[: max(0, SHOWN_PASSES - len(problems))]:
            problems.append(
                Problem(f"pass {serial_number}: {problem.path}", problem.message, problem.fix)
            )
    if failed:
        problems.insert(
            0,
            Problem(
                "pass.json",
                f"{failed} pass(es) made from {name} would be invalid with this version; "
                "nothing was changed.",
                "Change those passes first (PATCH their data), or the template; the first "
                f"{SHOWN_PASSES} problems are listed.",
            ),
        )
        raise PassInvalid(Report(errors=problems))


def _shape(value: Any) -> Any:
    """The value with every leaf replaced by its kind: what the data's structure is."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def _value_at(data: Any, dotted: str) -> list[Any]:
    """The value a placeholder takes, as a list that cannot be mistaken for absence."""
    try:
        return ["value", lookup(data, dotted)]
    except KeyError:
        return ["missing"]


def _forget_old_versions(template: PassTemplate, newest: int) -> None:
    """Keep the last KEPT_VERSIONS: each holds every file again, and no pass names an older
    one (they all moved to the newest; one a request read just before is still kept)."""
    in_use = sa.select(Pass.template_version_id).where(Pass.template_version_id.is_not(None))
    db.session.execute(
        sa.delete(TemplateVersion)
        .where(
            TemplateVersion.template_id == template.id,
            TemplateVersion.version <= newest - KEPT_VERSIONS,
            TemplateVersion.id.not_in(in_use),
        )
        .execution_options(synchronize_session=False)
    )


def remove_template(name: str) -> None:
    """Delete a template with all its versions; refused (409) while passes use it. The
    caller commits."""
    store.next_update_tag()  # the same order as a change: no pass is made from it meanwhile
    template = get_template(name)
    using = passes_using(name)
    if using:
        raise Conflict(f"{using} pass(es) are made from template {name}; delete or move them first")
    db.session.delete(template)
    db.session.flush()


def template_zip(version: TemplateVersion) -> bytes:
    """The version's folder as a zip (pass.json and every file), as `put` takes it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("pass.json", json.dumps(version.pass_json, indent=2, ensure_ascii=False))
        for file in version.files:
            archive.writestr(file.name, file.content)
    return buffer.getvalue()


# --- importing folders ---------------------------------------------------------------------


def template_folders(folder: Path) -> dict[str, Path]:
    """The templates a folder holds, by name: the folder itself when it has a pass.json
    (its name, without `.pkpasstemplate`), otherwise each folder inside that has one."""
    if (folder / "pass.json").is_file():
        candidates = [folder]
    elif folder.is_dir():
        candidates = sorted(p for p in folder.iterdir() if (p / "pass.json").is_file())
    else:
        candidates = []
    found = {}
    for path in candidates:
        name = path.name.removesuffix(DESIGNER_SUFFIX)
        if TEMPLATE_NAME.fullmatch(name):
            found[name] = path
    return found


def _last_imported_digest(name: str) -> str | None:
    return db.session.scalar(
        sa.select(TemplateVersion.digest)
        .join(PassTemplate)
        .where(PassTemplate.name == name, TemplateVersion.source == FOLDER)
        .order_by(TemplateVersion.version.desc())
        .limit(1)
    )


def _digest_if_readable(files: dict[str, bytes]) -> str | None:
    """The digest of a folder's content without checking it (a restart checks nothing
    when nothing changed); None when pass.json cannot be read, for the check to say why."""
    try:
        pass_json = json.loads(files["pass.json"])
    except (KeyError, ValueError, RecursionError):
        return None
    return content_digest(pass_json, {n: c for n, c in files.items() if n != "pass.json"})


def import_folders(folder: Path) -> dict[str, Change | None]:
    """Import each template folder that is new or changed since its last import, each in
    its own transaction (committed here). None for a folder left as it was."""
    results: dict[str, Change | None] = {}
    for name, path in template_folders(folder).items():
        files = read_folder(path)
        digest = _digest_if_readable(files)
        absent = find_template(name) is None
        unchanged = digest is not None and not absent and _last_imported_digest(name) == digest
        # Ends the read: on SQLite a transaction that read first cannot take the write lock
        # once another process wrote (put_template begins with its write).
        db.session.rollback()
        if unchanged:
            results[name] = None
            continue
        try:
            change = put_template(name, files, source=FOLDER)
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        if change.changed:
            log.info(
                "template %s: version %d imported from %s, %d pass(es) moved to it",
                name,
                change.version.version,
                path,
                change.passes,
            )
        results[name] = change if change.changed else None
    return results


def import_at_start(folder: Path) -> None:
    """The start-up import: skipped where the tables do not exist yet (`flask db upgrade`
    makes them), and never a reason for the server not to start."""
    try:
        if not sa.inspect(db.engine).has_table(TemplateVersion.__tablename__):
            return
        import_folders(folder)
    except (PassInvalid, ValidationError) as error:
        db.session.rollback()
        log.error("templates in %s not imported: %s", folder, error)
    except sa.exc.SQLAlchemyError as error:
        db.session.rollback()
        log.error("templates in %s not imported: %s", folder, type(error).__name__)
