"""Unsigned pass packages as designers hand them over: a zip, or a folder."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from passes.credentials import Certificates
from passes.errors import ValidationError
from passes.signing import sign_package
from passes.validation import PassInvalid, Problem, Report, ensure_valid

# Limits for an upload: a real pass is a few hundred kilobytes in a dozen files.
MAX_FILES = 200
MAX_UNCOMPRESSED = 20 * 1024 * 1024
# What macOS and zip tools add that is not part of the pass.
IGNORED = ("__MACOSX/", ".DS_Store", "manifest.json", "signature")


def read_zip(data: bytes) -> dict[str, bytes]:
    """The files of a zipped package; a single enclosing folder ("My.pass/") is unwrapped."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ValidationError("the body is not a zip file") from None
    entries = [info for info in archive.infolist() if not info.is_dir()]
    if len(entries) > MAX_FILES:
        raise ValidationError(f"a pass package has at most {MAX_FILES} files")
    # Declared sizes can lie; reading stops at the limit all the same (see _read).
    budget = MAX_UNCOMPRESSED
    files: dict[str, bytes] = {}
    for info in entries:
        if info.filename in files:
            # Which copy an unzip keeps differs from tool to tool: refuse, do not guess.
            raise ValidationError(f"{info.filename} is in the zip twice")
        content = _read(archive, info, budget)
        budget -= len(content)
        files[info.filename] = content
    return _unwrap(_without_ignored(files))


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes:
    try:
        with archive.open(info) as entry:
            content = entry.read(budget + 1)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError):
        raise ValidationError(f"{info.filename} cannot be read from the zip") from None
    if len(content) > budget:
        raise ValidationError(f"the package unpacks to more than {MAX_UNCOMPRESSED} bytes")
    return content


def read_folder(folder: Path) -> dict[str, bytes]:
    """The files of a package folder, within the limits of an upload."""
    files: dict[str, bytes] = {}
    budget = MAX_UNCOMPRESSED
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        if len(files) == MAX_FILES:
            raise ValidationError(f"a pass package has at most {MAX_FILES} files")
        name = path.relative_to(folder).as_posix()
        try:
            with path.open("rb") as file:
                content = file.read(budget + 1)
        except OSError as error:
            raise ValidationError(f"{name} cannot be read ({error.strerror})") from None
        if len(content) > budget:
            raise ValidationError(f"the package holds more than {MAX_UNCOMPRESSED} bytes")
        budget -= len(content)
        files[name] = content
    return _without_ignored(files)


def _without_ignored(files: dict[str, bytes]) -> dict[str, bytes]:
    return {
        name: content
        for name, content in files.items()
        if not any(name.startswith(p) or name.endswith(p) for p in IGNORED)
    }


def _unwrap(files: dict[str, bytes]) -> dict[str, bytes]:
    tops = {name.split("/", 1)[0] for name in files}
    if len(tops) == 1 and "pass.json" not in files and all("/" in n for n in files):
        prefix = tops.pop() + "/"
        return {name[len(prefix) :]: content for name, content in files.items()}
    return files


def sign_unsigned(files: dict[str, bytes], certificates: Certificates) -> tuple[bytes, Report]:
    """Validate, check the identifiers match one of our certificates, and sign with it."""
    report = ensure_valid(files)
    pass_json = json.loads(files["pass.json"])
    pass_type = pass_json.get("passTypeIdentifier")
    credentials = certificates.for_type(pass_type)
    if credentials is None:
        ours = " or ".join(repr(t) for t in certificates.pass_types)
        raise PassInvalid(
            Report(
                errors=[
                    Problem(
                        "$.passTypeIdentifier",
                        f"is {pass_type!r} but this service's certificates are for {ours}",
                        f"set passTypeIdentifier to {ours}; Wallet refuses a pass signed "
                        "for another one",
                    )
                ]
            )
        )
    team = credentials.team_identifier
    if pass_json.get("teamIdentifier") != team:
        raise PassInvalid(
            Report(
                errors=[
                    Problem(
                        "$.teamIdentifier",
                        f"is {pass_json.get('teamIdentifier')!r} but the certificate of "
                        f"{pass_type} is for {team!r}",
                        f"set teamIdentifier to {team!r}; Wallet refuses a pass signed for "
                        "another one",
                    )
                ]
            )
        )
    return sign_package(files, credentials), report
