"""Assembling a pass: template + per-pass data + per-pass files -> pass.json and files."""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from passes.errors import ValidationError
from passes.validation import json_limit_problems

TEMPLATE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# A file of a pass package: a plain name, or one inside a localization folder.
PACKAGE_FILE_NAME = re.compile(r"(?:[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*\.lproj/)?[\w@.-]{1,100}")
RESERVED_FILES = {"pass.json", "manifest.json", "signature"}
# Keys the service owns: they are set from the certificate, the URL and the pass's row.
INJECTED_KEYS = (
    "passTypeIdentifier",
    "serialNumber",
    "teamIdentifier",
    "webServiceURL",
    "authenticationToken",
)


@dataclass(frozen=True)
class Template:
    """A template read into memory, with the digests of its files."""

    name: str
    pass_json: dict[str, Any]
    files: dict[str, bytes]
    digests: dict[str, str]

    @cached_property
    def has_placeholders(self) -> bool:
        return _has_placeholders(self.pass_json)


# --- per-pass values in a template's strings ------------------------------------------------
#
# A string anywhere in a template's pass.json (a value, never a key) may hold
# `{{serialNumber}}` or `{{data.PATH}}`: PATH is a dotted path into the pass's own data (its
# partial pass.json, e.g. `data.userInfo.memberId`; a whole number indexes a list). Spaces
# inside the braces are allowed. A string value is put in as it is; any other value as its
# JSON text (5, true, {"a": 1}). `\{{` is a literal `{{` (written "\\{{" in JSON). Only the
# template's strings are filled: the pass's own data is never read as a template.
PLACEHOLDER = re.compile(r"\\\{\{|\{\{(.*?)\}\}|\{\{", re.DOTALL)
PLACEHOLDER_NAME = re.compile(r"serialNumber|data(?:\.[^.\s{}]+)+")


class PlaceholderError(ValidationError):
    """A placeholder that cannot be filled: the message names it and why."""


def _has_placeholders(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, dict):
        return any(_has_placeholders(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_placeholders(v) for v in value)
    return False


def _json_child(path: str, key: str) -> str:
    # As validation.py writes paths, so that problems found there can be matched here.
    return (
        f"{path}.{key}"
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key)
        else f"{path}[{json.dumps(key)}]"
    )


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def lookup(data: Any, dotted: str) -> Any:
    """The value at `dotted` (after `data.`) in the pass's data; KeyError names the step."""
    value = data
    for step in dotted.split("."):
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            raise KeyError(step)
    return value


def _fill_string(text: str, path: str, serial_number: str, data: Mapping[str, Any] | None) -> str:
    """`text` with its placeholders filled; `data` None checks their form only."""

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "\\{{":
            return "{{"
        if match.group(1) is None:
            raise PlaceholderError(
                "has a '{{' that starts no placeholder: close it with '}}', or write '\\{{' "
                "for a literal '{{'",
                path=path,
            )
        name = match.group(1).strip()
        if not PLACEHOLDER_NAME.fullmatch(name):
            raise PlaceholderError(
                f"has the placeholder {whole}, which names nothing: use {{{{serialNumber}}}} "
                "or {{data.some.key}} (a key of the pass's data)",
                path=path,
            )
        if name == "serialNumber":
            return serial_number
        if data is None:
            return whole
        try:
            return _as_text(lookup(data, name.removeprefix("data.")))
        except KeyError as missing:
            raise PlaceholderError(
                f"has the placeholder {whole}, but the pass's data has no "
                f"{name.removeprefix('data.')} (no {missing.args[0]!r}); set it in the "
                "pass's data",
                path=path,
            ) from None

    return PLACEHOLDER.sub(replace, text)


def fill_placeholders(
    value: Any, serial_number: str, data: Mapping[str, Any] | None, path: str = "$"
) -> Any:
    """A template's pass.json with every placeholder filled for one pass (new containers
    only where something changed). `data` None leaves `{{data...}}` as written and checks
    only that each placeholder is well formed. PlaceholderError (400) names the first that
    cannot be filled and where it is."""
    if isinstance(value, str):
        return _fill_string(value, path, serial_number, data) if "{{" in value else value
    if isinstance(value, dict):
        return {
            k: fill_placeholders(v, serial_number, data, _json_child(path, k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            fill_placeholders(v, serial_number, data, f"{path}[{i}]") for i, v in enumerate(value)
        ]
    return value


def _strings_with_braces(value: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    """(JSON path, text) of every string value holding "{{"."""
    if isinstance(value, str):
        if "{{" in value:
            yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings_with_braces(v, _json_child(path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings_with_braces(v, f"{path}[{i}]")


def _data_names(text: str) -> list[str]:
    """The data paths (`userInfo.memberId`) the placeholders of `text` name."""
    names = ((m.group(1) or "").strip() for m in PLACEHOLDER.finditer(text))
    return [name.removeprefix("data.") for name in names if name.startswith("data.")]


def data_placeholder_paths(value: Any) -> set[str]:
    """The JSON paths of strings holding a `{{data...}}` placeholder: what they become is
    known only for each pass."""
    return {path for path, text in _strings_with_braces(value) if _data_names(text)}


def data_placeholder_names(value: Any) -> set[str]:
    """The data paths the placeholders of a template name."""
    return {name for _, text in _strings_with_braces(value) for name in _data_names(text)}


class TemplateCache:
    """Template versions read from the database, kept by version id (thread-safe LRU).

    A version never changes once written and its id is never reused, so an entry is never
    stale: a changed template is a new version, which passes name as they move to it.
    """

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[int, Template] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, version_id: int, load: Callable[[], Template]) -> Template:
        with self._lock:
            found = self._entries.get(version_id)
            if found is not None:
                self._entries.move_to_end(version_id)
                return found
        template = load()  # outside the lock: a query must not hold up other requests
        with self._lock:
            self._entries[version_id] = template
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return template


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge key by key, null deletes, the rest replaces.

    New dicts are made along the patched paths; untouched values are shared, not copied
    (nothing here mutates them, and copying showed up in the build time).
    """
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def check_partial_pass(data: Any, path: str = "$.pass") -> dict[str, Any]:
    """The per-pass part of pass.json as given to the admin API or the CLI."""
    if not isinstance(data, dict):
        raise ValidationError("must be a JSON object (a partial pass.json)", path=path)
    # Before any merge: a document nested too deeply would make merging it recurse too far.
    problems = json_limit_problems(data, path)
    if problems:
        raise ValidationError(problems[0].message, path=problems[0].path)
    for key in INJECTED_KEYS:
        if key in data:
            raise ValidationError(
                f"{key} is set by the service; leave it out", path=f"{path}.{key}"
            )
    return data


def check_file_name(name: str, path: str) -> None:
    if not PACKAGE_FILE_NAME.fullmatch(name) or name in RESERVED_FILES or ".." in name:
        raise ValidationError(
            "file names are a plain name like 'thumbnail@2x.png' or 'fr.lproj/pass.strings' "
            "(not pass.json, manifest.json or signature)",
            path=path,
        )


@dataclass(frozen=True)
class Identity:
    """What the service injects into every pass.json."""

    pass_type_identifier: str
    team_identifier: str
    serial_number: str
    web_service_url: str | None
    authentication_token: str


def assemble(
    template: Template | None,
    data: Mapping[str, Any],
    own_files: Mapping[str, bytes],
    identity: Identity,
) -> tuple[dict[str, bytes], dict[str, str]]:
    """All files of the pass (pass.json included) and the digests already known.

    The template's placeholders are filled from the pass's serial number and data before
    the data is merged over it (PlaceholderError when one cannot be)."""
    base: dict[str, Any] = template.pass_json if template else {}
    if template is not None and template.has_placeholders:
        base = fill_placeholders(base, identity.serial_number, data, "$")
    pass_json = merge_patch(base, dict(data))
    pass_json["passTypeIdentifier"] = identity.pass_type_identifier
    pass_json["teamIdentifier"] = identity.team_identifier
    pass_json["serialNumber"] = identity.serial_number
    if identity.web_service_url:
        pass_json["webServiceURL"] = identity.web_service_url
        pass_json["authenticationToken"] = identity.authentication_token
    else:
        # Without a web service URL a token would be refused by Wallet (they come in pairs).
        pass_json.pop("webServiceURL", None)
        pass_json.pop("authenticationToken", None)
    files = dict(template.files) if template else {}
    digests = dict(template.digests) if template else {}
    for name, content in own_files.items():
        files[name] = content
        digests.pop(name, None)
    files["pass.json"] = json.dumps(pass_json, ensure_ascii=False).encode()
    return files, digests
