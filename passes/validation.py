"""Checking an unsigned pass package against Apple's rules, so Wallet never gets a broken pass.

Every problem is reported at once. Errors are what Wallet refuses or what Apple's documentation
says a pass must (not) do; warnings are what Wallet ignores, crops or shows badly. Sources:
Apple's "Wallet Passes" reference (Pass, PassFields, PassFieldContent, SemanticTags, ...) and the
archived Wallet Developer Guide ("Pass Design and Creation", "Rewards Enrollment"); where Apple is
silent the comment next to the rule says why it is there.

What pass.json may hold (keys, kinds, allowed values, nesting) is described in pass_format; this
module walks a document along that description, and holds the value checks and the rules the
description names for what a table cannot say.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import difflib
import functools
import ipaddress
import json
import re
import uuid
import zoneinfo
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from passes import images, strings
from passes.pass_format import (
    AIRLINE_SERVICE_KEYS,  # noqa: F401 - part of this module's interface
    BARCODE_FORMATS,
    BOARDING_FIELD_LIMITS,
    EVENT_GUIDE_KEYS,  # noqa: F401 - part of this module's interface
    FIELD_GROUPS,
    FIELD_LIMITS,
    IOS9_BARCODE_FORMATS,
    IOS27_BARCODE_FORMATS,
    LEGACY_BARCODE_FORMATS,
    LEGACY_STYLES,
    MAX_FEATURED_ACTIONS,
    PASS,
    PERSON_NAME,
    PERSONALIZATION_FIELDS,
    POSTER_GENERIC_FIELD_LIMITS,
    POSTER_STYLES,
    REQUIRED_KEYS,  # noqa: F401 - part of this module's interface
    SEMANTIC_MISSPELLINGS,
    SEMANTIC_TAGS,
    SQUARE_BARCODES,
    STYLE_SCHEMES,
    STYLES,  # noqa: F401 - part of this module's interface
    TEXT_ALIGNMENTS,
    Kind,
    Listed,
    ListOf,
    OneOf,
    Shape,
    Unused,
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a pass, where it is and what to do about it."""

    path: str
    message: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "fix": self.fix}


@dataclass
class Report:
    """Errors block the pass; warnings do not."""

    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, path: str, message: str, fix: str) -> None:
        self.errors.append(Problem(path, message, fix))

    def warn(self, path: str, message: str, fix: str) -> None:
        self.warnings.append(Problem(path, message, fix))

    def as_dict(self) -> dict[str, list[dict[str, str]]]:
        return {
            "errors": [p.as_dict() for p in self.errors],
            "warnings": [p.as_dict() for p in self.warnings],
        }


class PassInvalid(Exception):
    """The package has errors; `report` holds all of them (and the warnings)."""

    def __init__(self, report: Report) -> None:
        first = report.errors[0] if report.errors else None
        summary = f"{first.path}: {first.message}" if first else "no details"
        super().__init__(f"the pass has {len(report.errors)} error(s); first: {summary}")
        self.report = report


# W3C date-time ("Time and Date Formats"), which Apple cites for every date in pass.json: a
# complete date, hours and minutes, optional seconds and fraction, and a time zone designator.
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|([+-])(\d{2}):(\d{2}))"
)
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_NO_ZONE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?")
_ZONE_WITHOUT_COLON = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?[+-]\d{4}")
_RGB = re.compile(r"rgb\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)")
_HEX_COLOR = re.compile(r"#[0-9A-Fa-f]{6}")
_CHANGE_PLACEHOLDER = re.compile(r"%(\d+\$)?@")
_HTML_TAG = re.compile(r"<\s*/?\s*([A-Za-z][A-Za-z0-9]*)")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Language IDs as NSBundle names .lproj folders: en, zh-Hans, pt_BR, es-419, zh-Hant-TW.
_LANGUAGE_ID = re.compile(r"[a-z]{2,3}(?:[-_][A-Z][a-z]{3})?(?:[-_](?:[A-Z]{2}|\d{3}))?")
_TEAM_ID = re.compile(r"[A-Z0-9]{10}")
# SF Symbol names: lowercase words and digits joined by dots (figure.walk, 1.circle.fill).
_SF_SYMBOL = re.compile(r"[a-z0-9]+(?:\.[a-z0-9]+)*")
_CURRENCY = re.compile(r"[A-Z]{3}")
_DECIMAL = re.compile(r"-?\d+(\.\d+)?")
_WHERE_NEW_VALUE_GOES = 'Put %@ where the new value goes, for example "Gate changed to %@."'
_DATE_EXAMPLE = '"2026-11-22T10:00:00Z" or "2026-11-22T10:00-08:00"'


# --- public entry points ------------------------------------------------------------------


def validate_package(files: Mapping[str, bytes]) -> Report:
    """Every problem in an unsigned package: pass.json, images, localizations, personalization."""
    report = Report()
    for name in files:
        if unsafe_path(name):
            report.error(
                name,
                f"The file name {name!r} is not a plain relative path inside the package.",
                "Use names like icon.png or fr.lproj/logo.png: forward slashes, no '..', no "
                "leading '/'.",
            )
    localizations = _check_localizations(files, report)

    pass_data: object = None
    if "pass.json" not in files:
        report.error(
            "pass.json",
            "The package has no pass.json.",
            "Add pass.json at the top level of the package.",
        )
    else:
        pass_data = load_json(files["pass.json"], "pass.json", report)
    style, posters = None, ()
    if pass_data is not None:
        walk = _Walk(report, localizations)
        _check_pass(walk, pass_data)
        style, posters = walk.style, walk.posters

    for finding in images.check_images(files, style, posters):
        add = report.error if finding.severity == "error" else report.warn
        add(finding.path, finding.message, finding.fix)

    _check_personalization(files, pass_data, report)
    _check_unknown_files(files, report)
    return report


def style_problem(data: Mapping[str, Any]) -> str | None:
    """Why the style keys of a pass.json leave Wallet without a layout, or None when they do
    not: one of LEGACY_STYLES, and posterGeneric beside it (or alone, for iOS 27 only)."""
    legacy = [key for key in LEGACY_STYLES if key in data]
    if len(legacy) > 1:
        return (
            f"pass.json has {len(legacy)} pass styles ({', '.join(legacy)}); a pass has exactly "
            "one."
        )
    if not legacy and not any(key in data for key in POSTER_STYLES):
        return "pass.json has no pass style, so Wallet does not know how to lay the pass out."
    return None


def ensure_valid(files: Mapping[str, bytes]) -> Report:
    """The package's report when it has no errors; PassInvalid (carrying it) otherwise."""
    report = validate_package(files)
    if not report.ok:
        raise PassInvalid(report)
    return report


# --- small helpers ------------------------------------------------------------------------


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if _IDENTIFIER.fullmatch(key) else f"{path}[{json.dumps(key)}]"


def _leaf(path: str) -> str:
    """The last step of a JSON path, to name a value in a message: `primaryFields[0]`."""
    match = re.search(r"(?:\.|^\$)([^.]*)$", path)
    return match[1] if match and match[1] else path


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {json.dumps(value)}"
    if _is_number(value):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {json.dumps(value)[:60]}"
    if isinstance(value, list):
        return "a list"
    return "an object"


_KINDS: dict[str, tuple[Callable[[object], bool], str, str]] = {
    "string": (
        lambda v: isinstance(v, str),
        "a string",
        'a JSON string in double quotes, "like this"',
    ),
    "boolean": (lambda v: isinstance(v, bool), "true or false", "true or false, without quotes"),
    "number": (_is_number, "a number", "a JSON number without quotes, like 42 or 12.5"),
    "integer": (_is_int, "a whole number", "a whole JSON number without quotes, like 42"),
    "object": (lambda v: isinstance(v, dict), "an object", "a JSON object: { ... }"),
    "array": (lambda v: isinstance(v, list), "a list", "a JSON list: [ ... ]"),
}


def _expect(report: Report, value: object, kind: str, path: str) -> bool:
    test, name, example = _KINDS[kind]
    if test(value):
        return True
    report.error(
        path, f"{_leaf(path)} must be {name}, not {_describe(value)}.", f"Write {example}."
    )
    return False


def parse_w3c_datetime(text: str) -> datetime | None:
    """A W3C/ISO 8601 date-time with time zone as Apple requires, or None when it is not one."""
    match = _DATETIME.fullmatch(text)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g or 0) for g in match.groups()[:6])
    if match[7] == "Z":
        zone = UTC
    else:
        hours, minutes = int(match[9]), int(match[10])
        if hours > 23 or minutes > 59:
            return None
        offset = timedelta(hours=hours, minutes=minutes)
        zone = timezone(-offset if match[8] == "-" else offset)
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError:
        return None


def _check_date(report: Report, value: object, path: str) -> datetime | None:
    if not _expect(report, value, "string", path):
        return None
    assert isinstance(value, str)
    parsed = parse_w3c_datetime(value)
    if parsed is not None:
        return parsed
    if _DATE_ONLY.fullmatch(value):
        problem = "has a date but no time and time zone"
    elif _NO_ZONE.fullmatch(value):
        problem = "has no time zone, so devices would read it in their own zone"
    elif _ZONE_WITHOUT_COLON.fullmatch(value):
        problem = "writes the time zone without a colon (+0100), which W3C dates do not allow"
    else:
        problem = "is not an ISO 8601 date and time"
    report.error(
        path,
        f"{_leaf(path)} ({json.dumps(value)}) {problem}.",
        f"Write a date, 'T', hours and minutes and a time zone, like {_DATE_EXAMPLE}.",
    )
    return None


def parse_rgb(text: str) -> tuple[int, int, int] | None:
    """The numbers of a colour written as Apple documents it, `rgb(r, g, b)`, or None.
    Not range-checked: validation refuses parts above 255, a page clamps them."""
    match = _RGB.fullmatch(text.strip())
    if not match:
        return None
    red, green, blue = (int(part) for part in match.groups())
    return red, green, blue


def _check_color(report: Report, value: object, path: str) -> None:
    if not _expect(report, value, "string", path):
        return
    assert isinstance(value, str)
    rgb = parse_rgb(value)
    if rgb and all(part <= 255 for part in rgb):
        return
    if _HEX_COLOR.fullmatch(value.strip()):
        # Wallet is known to read hex colours, but Apple documents only rgb(); say so.
        report.warn(
            path,
            f"{_leaf(path)} ({value}) is a hex colour; Apple documents colours as rgb(r, g, b).",
            f"Write it as rgb({', '.join(str(int(value[i : i + 2], 16)) for i in (1, 3, 5))}).",
        )
        return
    report.error(
        path,
        f"{_leaf(path)} ({json.dumps(value)}) is not a colour Wallet understands.",
        "Write it as rgb(r, g, b) with three whole numbers from 0 to 255, like rgb(23, 187, 82).",
    )


def _check_enum(report: Report, value: object, allowed: tuple[str, ...], path: str) -> bool:
    if not _expect(report, value, "string", path):
        return False
    if value in allowed:
        return True
    report.error(
        path,
        f"{_leaf(path)} ({json.dumps(value)}) is not one of the values Wallet knows.",
        f"Use one of: {', '.join(allowed)}.",
    )
    return False


def _unknown_key(report: Report, path: str, known: Collection[str]) -> None:
    key = _leaf(path)
    report.warn(
        path,
        f"{key} is not a key Apple documents here; Wallet ignores it.",
        "Check the spelling (keys are case-sensitive) or remove it."
        + _did_you_mean(key, known)
        + (f" Known keys: {', '.join(sorted(known))}." if 0 < len(known) <= 16 else ""),
    )


def _did_you_mean(key: str, known: Collection[str]) -> str:
    match = next((name for name in known if name.lower() == key.lower()), None)
    match = match or next(iter(difflib.get_close_matches(key, known, 1, 0.85)), None)
    return f" Did you mean {match}?" if match else ""


def load_json(data: bytes, name: str, report: Report) -> object:
    """Parsed JSON, or None after reporting why it cannot be read."""
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    def constant(token: str) -> None:
        raise ValueError(f"{token} is not allowed in JSON")

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        report.error(name, f"{name} is not UTF-8 text (line {line}).", f"Save {name} as UTF-8.")
        return None
    try:
        loaded = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as exc:
        report.error(
            name,
            f"{name} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
            "Fix the JSON syntax there (a missing comma, quote or bracket is the usual cause).",
        )
        return None
    except ValueError as exc:
        report.error(
            name,
            f"{name} is not valid JSON: {exc}.",
            "Apple's JSON reader rejects NaN and Infinity; write a real number or a string.",
        )
        return None
    except RecursionError:
        report.errors.append(nesting_problem(text) or _too_deep("$"))
        return None
    report.errors.extend(json_limit_problems(loaded))
    for key in dict.fromkeys(duplicates):
        report.warn(
            name,
            f"{name} repeats the key {json.dumps(key)} in one object; only the last one counts.",
            "Keep one entry per key.",
        )
    return loaded


# Nesting deeper than this is refused. Apple's JSON reader stops at 512 levels; pass.json
# itself needs about 7 (eventTicket.primaryFields[0].semantics.seats[0]), and code here that
# walks a document (the merge patch, the dashboard's indented view) recurses once or twice per
# level, within Python's limit of 1000 frames with room to spare.
MAX_JSON_DEPTH = 64
# The largest finite IEEE 754 double. RFC 8259 section 6: software that reads numbers as
# doubles, as Apple's does, cannot hold a number beyond it; our formatting cannot either.
_LARGEST_DOUBLE = 1.7976931348623157e308


def json_limit_problems(document: object, path: str = "$") -> list[Problem]:
    """Numbers beyond a double's range and nesting deeper than MAX_JSON_DEPTH, anywhere.

    The walk keeps its own stack: a document nested a thousand deep cannot make it recurse.
    """
    problems: list[Problem] = []
    stack: list[tuple[object, str, int]] = [(document, path, 1)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                problems.append(_too_deep(where))
                continue
            items = value.items() if isinstance(value, dict) else enumerate(value)
            children = [
                (item, _child(where, key) if isinstance(key, str) else f"{where}[{key}]")
                for key, item in items
            ]
            # Reversed onto the stack, so problems come out in document order.
            stack.extend((item, child, depth + 1) for item, child in reversed(children))
        elif _is_number(value) and not -_LARGEST_DOUBLE <= value <= _LARGEST_DOUBLE:
            problems.append(
                Problem(
                    where,
                    "The number is larger than Wallet (or any reader of JSON numbers as "
                    "doubles) can hold.",
                    "Use a number below 1.8e308, or write the value as a string.",
                )
            )
    return problems


# The tokens that give JSON its shape; strings are matched whole so that brackets inside
# them do not count (the unrolled form runs at the regex engine's speed on long strings).
_JSON_SHAPE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\],]')


def nesting_problem(text: str, path: str = "$") -> Problem | None:
    """Where JSON text nests deeper than MAX_JSON_DEPTH, found without parsing it: for text
    too deep for the json module, which gives up with RecursionError and no position."""
    # Per open container: its kind, its path, and the key or index being read in it.
    open_: list[tuple[str, str]] = []
    at: list[str | int | None] = []

    def slot() -> str:
        if not open_:
            return path
        kind, where = open_[-1]
        inside = at[-1]
        if kind == "[":
            return f"{where}[{inside}]"
        return _child(where, inside) if isinstance(inside, str) else where

    for match in _JSON_SHAPE.finditer(text):
        token = match.group()
        if token in "{[":
            if len(open_) == MAX_JSON_DEPTH:
                return _too_deep(slot())
            open_.append((token, slot()))
            at.append(None if token == "{" else 0)
        elif not open_:
            continue
        elif token in "}]":
            open_.pop()
            at.pop()
        elif token == ",":
            at[-1] = None if open_[-1][0] == "{" else int(at[-1] or 0) + 1
        elif open_[-1][0] == "{" and at[-1] is None:
            at[-1] = json.loads(token)  # a key: the first string after "{" or ","
    return None


def _too_deep(where: str) -> Problem:
    return Problem(
        where,
        f"The document nests objects and lists more than {MAX_JSON_DEPTH} levels deep here.",
        f"Keep nesting to {MAX_JSON_DEPTH} levels; flatten or shorten the data.",
    )


def unsafe_path(name: str) -> bool:
    """Not a plain relative path inside a package (absolute, "..", backslashes, NUL)."""
    parts = name.split("/")
    return (
        not name
        or name.startswith("/")
        or "\\" in name
        or "\x00" in name
        or any(part in ("", ".", "..") for part in parts[:-1])
        or parts[-1] in (".", "..")
    )


# --- pass.json: walking the description ---------------------------------------------------


@dataclass
class _Walk:
    """What the checks of one pass.json share while walking it."""

    report: Report
    # language -> pass.strings table, to read localized change messages.
    localizations: Mapping[str, Mapping[str, str]]
    data: dict[str, Any] = field(default_factory=dict)
    # The style older devices show (posterGeneric when it is alone), and the poster layouts
    # newer ones may show instead: posterGeneric, posterEventTicket. Set by the "one style" rule.
    style: str | None = None
    posters: tuple[str, ...] = ()


def _check_pass(walk: _Walk, data: object) -> None:
    if not isinstance(data, dict):
        walk.report.error(
            "$",
            f"pass.json must hold a JSON object, not {_describe(data)}.",
            "Wrap the keys in { }.",
        )
        return
    walk.data = data
    _check(walk, data, PASS, "$")


def _check(walk: _Walk, value: object, kind: Kind, path: str) -> None:
    """Check a value against its kind in the description, and run the rules it names."""
    report = walk.report
    if isinstance(kind, str):
        if kind in _KINDS:
            _expect(report, value, kind, path)
        else:
            _VALUE_CHECKS[kind](walk, value, path)
    elif isinstance(kind, Shape):
        if _expect(report, value, "object", path):
            assert isinstance(value, dict)
            _check_keys(walk, value, kind, path)
            for rule in kind.rules:
                _RULES[rule](walk, value, path)
    elif isinstance(kind, ListOf):
        if _expect(report, value, "array", path):
            assert isinstance(value, list)
            for index, item in enumerate(value):
                _check(walk, item, kind.item, f"{path}[{index}]")
            if kind.unique:
                _unique(report, value, *kind.unique, path)
            for rule in kind.rules:
                _RULES[rule](walk, value, path)
    elif isinstance(kind, OneOf):
        _check_enum(report, value, kind.values, path)
    elif isinstance(kind, Listed):
        if _expect(report, value, "string", path) and value not in kind.values:
            report.warn(
                path,
                f"{json.dumps(value)} is not one of the values Apple lists here; Wallet "
                "ignores it.",
                f"Check the spelling (case-sensitive); Apple lists: {', '.join(kind.values)}.",
            )
    else:  # Unused
        report.warn(path, kind.message, kind.fix)
        if kind.kind is not None:
            _check(walk, value, kind.kind, path)


def _check_keys(walk: _Walk, item: dict[str, Any], shape: Shape, path: str) -> None:
    """Missing required keys, then each key by its kind; unknown keys are warned about."""
    for key, missing in shape.required.items():
        if key not in item:
            walk.report.error(
                path if missing.on_object else _child(path, key),
                missing.message.format(name=_leaf(path), key=key),
                missing.fix.format(name=_leaf(path), key=key),
            )
    for key, value in item.items():
        sub_path = _child(path, key)
        kind = shape.keys.get(key) or shape.quiet.get(key)
        if kind is None:
            # A key this layout ignores altogether is no spelling to suggest.
            known = [k for k, v in shape.keys.items() if not (isinstance(v, Unused) and not v.kind)]
            _unknown_key(walk.report, sub_path, known)
        else:
            _check(walk, value, kind, sub_path)


def _unique(report: Report, items: list[Any], key: str, what: str, path: str) -> None:
    """An error for each item whose `key` repeats an earlier item's."""
    seen: dict[str, str] = {}
    for index, item in enumerate(items):
        value = item.get(key) if isinstance(item, dict) else None
        if not isinstance(value, str):
            continue
        item_path = _child(f"{path}[{index}]", key)
        if value in seen:
            report.error(
                item_path,
                f"The {what} {key} {json.dumps(value)} is already used at {seen[value]}.",
                f"Give every {what} its own {key}.",
            )
        else:
            seen[value] = item_path


# --- values by kind -----------------------------------------------------------------------

_Check = Callable[[_Walk, object, str], None]


def _with_report(check: Callable[[Report, object, str], object]) -> _Check:
    """A check written for a report alone (also used outside pass.json), as a value check."""

    def checked(walk: _Walk, value: object, path: str) -> None:
        check(walk.report, value, path)

    return checked


def _string_check(check: Callable[[Report, str, str], None]) -> _Check:
    """A value check of a string: the JSON type first, then `check` on the text."""

    def checked(walk: _Walk, value: object, path: str) -> None:
        if _expect(walk.report, value, "string", path):
            assert isinstance(value, str)
            check(walk.report, value, path)

    return checked


def _check_format_version(walk: _Walk, value: object, path: str) -> None:
    if not (_is_number(value) and value == 1):
        walk.report.error(
            path,
            f"formatVersion must be the number 1, not {_describe(value)}.",
            'Write "formatVersion": 1 (a number, without quotes).',
        )


def _check_pass_type_identifier(report: Report, value: str, path: str) -> None:
    if not value.startswith("pass."):
        report.error(
            path,
            f"The pass type identifier {json.dumps(value)} does not start with 'pass.', so "
            "no Apple certificate can sign it.",
            "Use the identifier registered with Apple, like pass.com.example.membership.",
        )


def _check_team_identifier(report: Report, value: str, path: str) -> None:
    if not _TEAM_ID.fullmatch(value):
        report.warn(
            path,
            f"The team identifier {json.dumps(value)} does not look like an Apple Team ID "
            "(10 capital letters and digits).",
            "Copy the Team ID (the OU of the pass certificate) exactly.",
        )


def _check_serial_number(report: Report, value: str, path: str) -> None:
    if not value:
        report.error(path, "The serial number is empty.", "Give every pass a unique serial number.")


def _check_shown_text(report: Report, value: str, path: str) -> None:
    if not value.strip():
        key = _leaf(path)
        report.warn(
            path, f"{key} is empty; VoiceOver and the lock screen show it.", f"Write a short {key}."
        )


def _check_sf_symbol(report: Report, value: str, path: str) -> None:
    if not _SF_SYMBOL.fullmatch(value):
        report.warn(
            path,
            f"{json.dumps(value)} does not look like an SF Symbol name, so Wallet may show no "
            "logo.",
            "Copy the symbol's name from the SF Symbols app, like star.circle.fill.",
        )


def _check_distance(walk: _Walk, value: object, path: str) -> None:
    if _expect(walk.report, value, "number", path) and value < 0:  # type: ignore[operator]
        walk.report.error(path, "maxDistance is negative.", "Give a distance in metres, 0 or more.")


def _check_style_scheme(report: Report, value: str, path: str) -> None:
    # Apple adds schemes with new releases; an unknown one falls back, not fails.
    if value not in STYLE_SCHEMES:
        report.warn(
            path,
            f"{json.dumps(value)} is not a style scheme this validator knows.",
            f"Check the spelling against Apple's docs; known: {', '.join(STYLE_SCHEMES)}.",
        )


def _check_time_zone(report: Report, value: str, path: str) -> None:
    known = _time_zones()
    # Without a time zone database on this host the name cannot be judged.
    if known and value not in known:
        report.error(
            path,
            f"{json.dumps(value)} is not a time zone name; Wallet refuses the pass.",
            "Use an IANA time zone name, like Europe/Paris or America/Los_Angeles.",
        )


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _check_currency_code(report: Report, value: str, path: str) -> None:
    if not _CURRENCY.fullmatch(value):
        report.error(
            path,
            f"{json.dumps(value)} is not an ISO 4217 currency code.",
            "Use three capital letters, like EUR or USD.",
        )


def _check_amount(walk: _Walk, value: object, path: str) -> None:
    report = walk.report
    if _is_number(value):
        report.error(
            path,
            "A semantic currency amount must be a string, not a number.",
            f'Write the amount in quotes, like "{value}".',
        )
    elif _expect(report, value, "string", path) and value and not _DECIMAL.fullmatch(value):  # type: ignore[arg-type]
        report.warn(
            path,
            f"{json.dumps(value)} is not a plain decimal amount.",
            'Write digits with a dot for decimals, like "12.50".',
        )


def _degrees(limit: int) -> _Check:
    """Latitude (up to 90) or longitude (up to 180), in degrees."""

    def check(walk: _Walk, value: object, path: str) -> None:
        if _expect(walk.report, value, "number", path) and not -limit <= value <= limit:  # type: ignore[operator]
            walk.report.error(
                path,
                f"{_leaf(path)} {value} is outside -{limit} to {limit} degrees.",
                "Use decimal degrees (WGS 84); check that latitude and longitude are not swapped.",
            )

    return check


def _check_phonetic_name(walk: _Walk, value: object, path: str) -> None:
    _check(walk, value, PERSON_NAME if isinstance(value, dict) else "string", path)


def _check_uuid(report: Report, value: str, path: str) -> None:
    try:
        uuid.UUID(value)
    except ValueError:
        report.error(
            path,
            f"{json.dumps(value)} is not a UUID.",
            "Write the beacon UUID as 8-4-4-4-12 hex digits.",
        )


def _check_uint16(walk: _Walk, value: object, path: str) -> None:
    if _expect(walk.report, value, "integer", path) and not 0 <= value <= 0xFFFF:  # type: ignore[operator]
        key = _leaf(path)
        walk.report.error(
            path,
            f"The beacon {key} value {value} does not fit in 16 bits.",
            f"Use a {key} value from 0 to 65535.",
        )


def _check_legacy_barcode_format(walk: _Walk, value: object, path: str) -> None:
    if value in BARCODE_FORMATS and value not in LEGACY_BARCODE_FORMATS:
        walk.report.error(
            path,
            f"The deprecated barcode dictionary cannot use {value}.",
            f"Use {', '.join(LEGACY_BARCODE_FORMATS)} here, and put {value} in the barcodes list "
            "only.",
        )
    else:
        _check_enum(walk.report, value, LEGACY_BARCODE_FORMATS, path)


def _check_message_encoding(report: Report, value: str, path: str) -> None:
    try:
        codecs.lookup(value)
    except LookupError:
        report.warn(
            path,
            f"{json.dumps(value)} is not an encoding name this server knows, so the message "
            "could not be checked against it.",
            "Use an IANA character set name such as iso-8859-1 or utf-8.",
        )


def _check_nfc_message(report: Report, value: str, path: str) -> None:
    size = len(value.encode("utf-8"))
    if size > 64:
        report.error(
            path,
            f"The NFC message is {size} bytes; Wallet truncates anything past 64 bytes, so the "
            "terminal would read a different value.",
            "Shorten the NFC message to 64 bytes or fewer (UTF-8).",
        )


def _check_nfc_key(report: Report, text: str, path: str) -> None:
    fix = (
        "Use the base64 of the X.509 SubjectPublicKeyInfo (DER) of your P-256 (secp256r1) ECDH "
        "key, as given by your NFC terminal vendor."
    )
    try:
        der = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        report.error(path, "The NFC encryptionPublicKey is not valid base64.", fix)
        return
    try:
        key = load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        report.error(path, "The NFC encryptionPublicKey is not a DER public key.", fix)
        return
    if not (isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"):
        report.error(path, "The NFC encryptionPublicKey is not a P-256 elliptic-curve key.", fix)


def _check_web_service_url(report: Report, url: str, path: str) -> None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        report.error(path, f"{json.dumps(url)} is not a valid URL.", "Write an https:// URL.")
        return
    scheme = parts.scheme.lower()
    if not host or scheme not in ("http", "https"):
        report.error(
            path,
            f"webServiceURL {json.dumps(url)} is not an http(s) URL with a host.",
            "Write the base URL of this server, like https://passes.example.com/.",
        )
        return
    if scheme == "http":
        if _is_loopback(host):
            report.warn(
                path,
                "webServiceURL uses plain http; Wallet accepts that only while developing.",
                "Use an https:// URL before handing the pass to real devices.",
            )
        else:
            report.error(
                path,
                "webServiceURL uses plain http; Wallet requires https outside local development.",
                "Serve the web service over https and use an https:// URL.",
            )
    if parts.query or parts.fragment:
        report.warn(
            path,
            "webServiceURL has a query or fragment; Wallet appends /v1/... to the URL, which "
            "would land inside it.",
            "Use a plain base URL without ? or #.",
        )
    if parts.path.rstrip("/").endswith("/v1"):
        report.warn(
            path,
            "webServiceURL ends in /v1; Wallet adds /v1 itself, so requests would go to /v1/v1/.",
            "Remove the trailing /v1 from webServiceURL.",
        )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_authentication_token(report: Report, token: str, path: str) -> None:
    if len(token) < 16:
        report.error(
            path,
            f"The authentication token has {len(token)} characters; Apple requires at least 16.",
            "Use a random token of 16 or more characters (32 hex digits is typical).",
        )
    if not all(0x21 <= ord(c) <= 0x7E for c in token):
        report.error(
            path,
            "The authentication token has spaces, control or non-ASCII characters; it travels in "
            "an HTTP header.",
            "Use letters, digits and punctuation only.",
        )


def _check_semantics(walk: _Walk, value: object, path: str) -> None:
    # Not a Shape: an unknown tag gets its own message, and a known misspelling its correction.
    report = walk.report
    if not _expect(report, value, "object", path):
        return
    assert isinstance(value, dict)
    for key, sub in value.items():
        sub_path = _child(path, key)
        kind = SEMANTIC_TAGS.get(key)
        if kind is not None:
            _check(walk, sub, kind, sub_path)
            continue
        spelling = SEMANTIC_MISSPELLINGS.get(key)
        if spelling:
            report.warn(
                sub_path,
                f"{key} is not a semantic tag Wallet reads; it ignores it.",
                f"Wallet reads {spelling} instead.",
            )
            continue
        report.warn(
            sub_path,
            f"{key} is not a semantic tag Apple documents; Wallet ignores it.",
            "Check the spelling against Apple's SemanticTags list, or remove it."
            + _did_you_mean(key, SEMANTIC_TAGS),
        )


# Fields ------------------------------------------------------------------------------------


def _check_field_key(report: Report, value: str, path: str) -> None:
    if not value:
        report.error(path, "The field key is empty.", "Give the field a key unique in the pass.")


def _check_field_value(walk: _Walk, value: object, path: str) -> None:
    if not (isinstance(value, str) or _is_number(value)):
        walk.report.error(
            path,
            f"A field value must be a string, a number or a date, not {_describe(value)}.",
            "Write the value as text or as a number.",
        )


def _check_attributed_value(walk: _Walk, value: object, path: str) -> None:
    report = walk.report
    if not (isinstance(value, str) or _is_number(value)):
        report.error(
            path,
            f"attributedValue must be a string or a number, not {_describe(value)}.",
            "Write the attributed value as text (links as <a href='...'>...</a>).",
        )
        return
    if isinstance(value, str):
        tags = {tag.lower() for tag in _HTML_TAG.findall(value)} - {"a"}
        if tags:
            report.warn(
                path,
                f"attributedValue uses <{'>, <'.join(sorted(tags))}>; Wallet supports only "
                "<a href> links and shows other tags as text.",
                "Keep only <a href='...'> links in attributedValue.",
            )


def _check_change_message(walk: _Walk, text: object, path: str) -> None:
    report = walk.report
    if not _expect(report, text, "string", path):
        return
    assert isinstance(text, str)
    # The message is a localizable format string: check each translation when it is a key.
    translated = [
        (lang, table[text]) for lang, table in walk.localizations.items() if text in table
    ]
    if not translated:
        if not _CHANGE_PLACEHOLDER.search(text):
            report.error(
                path,
                f"The change message {json.dumps(text)} has no %@, so the update notification "
                "cannot show the new value.",
                _WHERE_NEW_VALUE_GOES,
            )
        return
    for lang, message in sorted(translated):
        if not _CHANGE_PLACEHOLDER.search(message):
            report.error(
                path,
                f"The {lang} translation of the change message ({json.dumps(message)}, in "
                f"{lang}.lproj/pass.strings) has no %@.",
                _WHERE_NEW_VALUE_GOES,
            )


def _check_row(walk: _Walk, value: object, path: str) -> None:
    if _expect(walk.report, value, "integer", path) and value not in (0, 1):
        walk.report.error(path, f"row must be 0 or 1, not {value}.", "Use row 0 or row 1.")


_VALUE_CHECKS: dict[str, _Check] = {
    "date": _with_report(_check_date),
    "color": _with_report(_check_color),
    "timeZone": _string_check(_check_time_zone),
    "formatVersion": _check_format_version,
    "passTypeIdentifier": _string_check(_check_pass_type_identifier),
    "teamIdentifier": _string_check(_check_team_identifier),
    "serialNumber": _string_check(_check_serial_number),
    "shownText": _string_check(_check_shown_text),
    "sfSymbol": _string_check(_check_sf_symbol),
    "distance": _check_distance,
    "styleScheme": _string_check(_check_style_scheme),
    "webServiceURL": _string_check(_check_web_service_url),
    "authenticationToken": _string_check(_check_authentication_token),
    "semantics": _check_semantics,
    "currencyCode": _string_check(_check_currency_code),
    "amount": _check_amount,
    "latitude": _degrees(90),
    "longitude": _degrees(180),
    "phoneticName": _check_phonetic_name,
    "uuid": _string_check(_check_uuid),
    "uint16": _check_uint16,
    "legacyBarcodeFormat": _check_legacy_barcode_format,
    "messageEncoding": _string_check(_check_message_encoding),
    "nfcMessage": _string_check(_check_nfc_message),
    "nfcKey": _string_check(_check_nfc_key),
    "fieldKey": _string_check(_check_field_key),
    "fieldValue": _check_field_value,
    "attributedValue": _check_attributed_value,
    "changeMessage": _check_change_message,
    "row": _check_row,
}


# --- rules: what the description cannot say ----------------------------------------------

_Rule = Callable[[_Walk, Any, str], None]


def _one_style(walk: _Walk, data: dict[str, Any], path: str) -> None:
    legacy = [key for key in LEGACY_STYLES if key in data]
    walk.posters = tuple(key for key in POSTER_STYLES if key in data)
    problem = style_problem(data)
    if problem:
        fix = (
            "Keep one style key (posterGeneric may go beside it) and move its fields into it."
            if legacy
            else f"Add one of {', '.join(LEGACY_STYLES)} with the pass's fields."
        )
        walk.report.error(path, problem, fix)
        return
    walk.style = legacy[0] if legacy else walk.posters[0]
    if not legacy:
        walk.report.warn(
            path,
            f"{walk.style} needs iOS 27; older devices cannot show a pass without one of "
            f"{', '.join(LEGACY_STYLES)} beside it.",
            f"Add a generic (or storeCard, coupon, eventTicket) dictionary beside {walk.style} "
            "with the same information.",
        )
    schemes = data.get("preferredStyleSchemes")
    if walk.style == "eventTicket" and isinstance(schemes, list):
        # Poster event tickets are event tickets that ask for the poster scheme.
        walk.posters += ("posterEventTicket",) if "posterEventTicket" in schemes else ()


def _grouping_only_for_events_and_boarding(walk: _Walk, data: dict[str, Any], path: str) -> None:
    if isinstance(data.get("groupingIdentifier"), str) and walk.style not in (
        None,
        "eventTicket",
        "boardingPass",
    ):
        walk.report.warn(
            _child(path, "groupingIdentifier"),
            f"groupingIdentifier is only for event tickets and boarding passes; a {walk.style} "
            "ignores it.",
            "Remove groupingIdentifier.",
        )


def _app_launch_needs_an_app(walk: _Walk, data: dict[str, Any], path: str) -> None:
    if isinstance(data.get("appLaunchURL"), str) and "associatedStoreIdentifiers" not in data:
        walk.report.warn(
            _child(path, "appLaunchURL"),
            "appLaunchURL does nothing without associatedStoreIdentifiers.",
            "Add associatedStoreIdentifiers with your app's App Store ID, or remove appLaunchURL.",
        )


def _barcode_is_deprecated(walk: _Walk, data: dict[str, Any], path: str) -> None:
    if "barcode" in data and "barcodes" not in data:
        walk.report.warn(
            _child(path, "barcode"),
            "barcode is deprecated since iOS 9.",
            "Put the same dictionary in a barcodes list too (keep barcode for iOS 8 and older).",
        )


def _web_service(walk: _Walk, data: dict[str, Any], path: str) -> None:
    token_path = _child(path, "authenticationToken")
    if "webServiceURL" in data and "authenticationToken" not in data:
        walk.report.error(
            token_path,
            "The pass has a webServiceURL but no authenticationToken, so devices cannot "
            "register for updates.",
            "Add an authenticationToken of at least 16 characters.",
        )
    elif "authenticationToken" in data and "webServiceURL" not in data:
        walk.report.warn(
            token_path,
            "The pass has an authenticationToken but no webServiceURL; the token is unused.",
            "Add the webServiceURL, or remove the token.",
        )


def _relevance(walk: _Walk, data: dict[str, Any], path: str) -> None:
    # Table 4-2, "Pass style and relevance information".
    style = walk.style
    if style in ("coupon", "storeCard") and "relevantDate" in data:
        walk.report.warn(
            _child(path, "relevantDate"),
            f"A {style} does not support a relevant date; Wallet ignores it.",
            "Remove relevantDate; use locations to make the pass relevant.",
        )
    other = "relevantDate" in data or "beacons" in data
    if style in ("coupon", "storeCard", "generic") and other and "locations" not in data:
        walk.report.warn(
            path,
            f"A {style} with relevance information must also list locations.",
            "Add locations (where the pass is useful) or remove the other relevance keys.",
        )


def _a_date_or_an_interval(walk: _Walk, item: dict[str, Any], path: str) -> None:
    report = walk.report
    single = [k for k in ("date", "relevantDate") if k in item]
    interval = [k for k in ("startDate", "endDate") if k in item]
    if single and interval:
        report.error(
            path,
            "A relevant date has both a single date and a start/end interval.",
            "Use either date or startDate with endDate in one entry.",
        )
    elif len(interval) == 1:
        report.error(
            path,
            f"A relevant date interval has {interval[0]} without its other end.",
            "Give both startDate and endDate, or use date alone.",
        )
    elif not single and not interval:
        report.error(
            path, "A relevant date entry has no date.", "Add date, or startDate and endDate."
        )
    start, end = (
        parse_w3c_datetime(value) if isinstance(value, str) else None
        for value in (item.get("startDate"), item.get("endDate"))
    )
    if start and end and end < start:
        report.error(
            _child(path, "endDate"),
            "The relevant interval ends before it starts.",
            "Swap startDate and endDate, or correct one of them.",
        )


def _at_most_ten_locations(walk: _Walk, locations: list[Any], path: str) -> None:
    if len(locations) > 10:
        walk.report.error(
            path,
            f"The pass has {len(locations)} locations; Wallet allows up to ten.",
            "Keep the ten most useful locations (or use beacons for more places).",
        )


def _at_most_ten_beacon_uuids(walk: _Walk, beacons: list[Any], path: str) -> None:
    uuids = set()
    for beacon in beacons:
        text = beacon.get("proximityUUID") if isinstance(beacon, dict) else None
        if isinstance(text, str):
            with contextlib.suppress(ValueError):
                uuids.add(uuid.UUID(text))
    if len(uuids) > 10:
        walk.report.error(
            path,
            f"The pass has {len(uuids)} different beacon UUIDs; Wallet allows up to ten.",
            "Share UUIDs between beacons and tell them apart with major and minor.",
        )


def _minor_needs_major(walk: _Walk, beacon: dict[str, Any], path: str) -> None:
    if "minor" in beacon and "major" not in beacon:
        # Core Location cannot match a minor value without its major value.
        walk.report.warn(
            _child(path, "minor"),
            "A beacon has minor without major; the minor value cannot be used alone.",
            "Add major, or remove minor.",
        )


def _barcode_message(allowed: tuple[str, ...]) -> _Rule:
    """The message against its format (one of `allowed`) and its encoding."""

    def check(walk: _Walk, barcode: dict[str, Any], path: str) -> None:
        fmt, message = barcode.get("format"), barcode.get("message")
        encoding = barcode.get("messageEncoding")
        if not isinstance(message, str):
            return
        if isinstance(fmt, str) and fmt in allowed:
            _check_symbology(walk.report, fmt, message, _child(path, "message"))
        if not isinstance(encoding, str):
            return
        try:
            message.encode(encoding)
        except LookupError:
            pass  # an encoding this server does not know: said at messageEncoding
        except UnicodeEncodeError as exc:
            bad = message[exc.start : exc.end]
            walk.report.error(
                _child(path, "message"),
                f"The barcode message has characters ({bad!r}) that {encoding} cannot encode, so "
                "Wallet cannot draw the barcode.",
                "Use utf-8 as messageEncoding, or keep the message to characters the encoding has.",
            )

    return check


def _check_symbology(report: Report, fmt: str, message: str, path: str) -> None:
    if fmt == "PKBarcodeFormatEAN13":
        # An EAN-13 symbol holds exactly 12 digits plus a check digit.
        if not (message.isascii() and message.isdigit() and len(message) in (12, 13)):
            report.error(
                path,
                f"An EAN-13 barcode holds 12 or 13 digits, not {json.dumps(message)}.",
                "Use the 12-digit article number (or 13 digits with the check digit).",
            )
        elif len(message) == 13 and _ean_check_digit(message[:12]) != message[12]:
            report.error(
                path,
                f"The EAN-13 check digit of {message} is wrong (expected "
                f"{_ean_check_digit(message[:12])}).",
                "Correct the last digit, or give only the first 12 digits.",
            )
    elif fmt == "PKBarcodeFormatI2of5":
        if not (message.isascii() and message.isdigit()):
            report.error(
                path,
                "An Interleaved 2 of 5 barcode holds digits only.",
                "Use a message of digits, or another barcode format.",
            )
        elif len(message) % 2:
            report.warn(
                path,
                "Interleaved 2 of 5 encodes digits in pairs; an odd count gets a leading 0.",
                "Give an even number of digits.",
            )
    elif fmt == "PKBarcodeFormatCode39" and not re.fullmatch(r"[0-9A-Z \-.$/+%]*", message):
        report.warn(
            path,
            "Code 39 has only capital letters, digits and - . $ / + % and space.",
            "Use capitals and those symbols only, or choose Code128 or QR.",
        )
    elif fmt == "PKBarcodeFormatCodabar" and not re.fullmatch(
        r"[A-Da-d]?[0-9\-$:/.+]+[A-Da-d]?", message
    ):
        report.warn(
            path,
            "Codabar holds digits and - $ : / . + (with optional A-D start/stop letters).",
            "Use those characters only, or choose Code128 or QR.",
        )


def _ean_check_digit(digits: str) -> str:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return str(-total % 10)


def _barcode_fallbacks(walk: _Walk, barcodes: list[Any], path: str) -> None:
    """iOS 27 formats need an older one after them; Apple Watch cannot show Code128."""
    report = walk.report
    if not barcodes:
        report.warn(path, "barcodes is an empty list.", "Add a barcode or remove the key.")
    formats = [
        item.get("format")
        if isinstance(item, dict) and item.get("format") in BARCODE_FORMATS
        else None
        for item in barcodes
    ]
    for index, fmt in enumerate(formats):
        earlier = [f for f in formats[:index] if f in BARCODE_FORMATS]
        later = formats[index + 1 :]
        if fmt in IOS27_BARCODE_FORMATS and earlier:
            # Pass.Barcodes: "The system uses the first displayable barcode for the device."
            report.warn(
                f"{path}[{index}]",
                f"{fmt} is never shown: every device shows the first barcode it can, and "
                f"{earlier[0]} comes before it.",
                f"Put {fmt} first and the older format after it as the fallback.",
            )
        elif fmt in IOS27_BARCODE_FORMATS and not any(f in IOS9_BARCODE_FORMATS for f in later):
            report.warn(
                f"{path}[{index}]",
                f"{fmt} needs iOS 27; older devices show no barcode unless another format "
                "follows it in the list.",
                "Add a QR, PDF417, Aztec or Code128 barcode after it as a fallback.",
            )
    if "PKBarcodeFormatCode128" in formats and not any(
        f in LEGACY_BARCODE_FORMATS for f in formats
    ):
        report.warn(
            f"{path}[{formats.index('PKBarcodeFormatCode128')}]",
            "Apple Watch cannot show Code128 barcodes and this pass has no other format.",
            "Add a QR, PDF417 or Aztec barcode to the list as a fallback for watchOS.",
        )


def _authentication_needs_sharing_prohibited(walk: _Walk, nfc: dict[str, Any], path: str) -> None:
    if nfc.get("requiresAuthentication") is True and walk.data.get("sharingProhibited") is not True:
        # Apple: set sharingProhibited so the pass cannot reach iOS versions that skip the
        # authentication requirement.
        walk.report.warn(
            _child(path, "requiresAuthentication"),
            "requiresAuthentication is on but sharing is allowed, so a shared copy on an older "
            "iOS version could skip authentication.",
            'Add "sharingProhibited": true.',
        )


def _at_most_two_featured_actions(walk: _Walk, actions: list[Any], path: str) -> None:
    if len(actions) > MAX_FEATURED_ACTIONS:
        walk.report.warn(
            path,
            f"The pass has {len(actions)} featured actions; Wallet shows at most "
            f"{MAX_FEATURED_ACTIONS}.",
            f"Keep the {MAX_FEATURED_ACTIONS} most useful ones.",
        )


def _amount_has_a_currency(walk: _Walk, amount: dict[str, Any], path: str) -> None:
    if "currencyCode" not in amount:
        walk.report.warn(path, "The amount has no currencyCode.", "Add currencyCode, like EUR.")


def _unique_field_keys(walk: _Walk, layout: dict[str, Any], path: str) -> None:
    """Field keys are unique across the fields of one layout."""
    seen: dict[str, str] = {}
    for group, fields in layout.items():
        if group not in FIELD_GROUPS or not isinstance(fields, list):
            continue
        for index, item in enumerate(fields):
            key = item.get("key") if isinstance(item, dict) else None
            if not isinstance(key, str) or not key:
                continue
            key_path = _child(f"{_child(path, group)}[{index}]", "key")
            if key in seen:
                walk.report.error(
                    key_path,
                    f"The field key {json.dumps(key)} is already used at {seen[key]}; keys must "
                    "be unique across the whole pass.",
                    "Rename one of the fields.",
                )
            else:
                seen[key] = key_path


def _field_counts(walk: _Walk, layout: dict[str, Any], path: str) -> None:
    style = _leaf(path)  # a layout is the value of its style key
    limits = {
        "boardingPass": BOARDING_FIELD_LIMITS,
        "posterGeneric": POSTER_GENERIC_FIELD_LIMITS,
    }.get(style, FIELD_LIMITS)
    lists = {k: v for k, v in layout.items() if isinstance(v, list)}
    for group, limit in limits.items():
        fields = lists.get(group, [])
        if style == "eventTicket" and group == "auxiliaryFields":
            # Event tickets can split auxiliary fields into rows (row 0 and 1) of four.
            rows: dict[object, int] = {}
            for item in fields:
                row = item.get("row") if isinstance(item, dict) else None
                row = row if _is_int(row) else 0
                rows[row] = rows.get(row, 0) + 1
            over = {row: n for row, n in rows.items() if n > limit}
            if over:
                _too_many(
                    walk, _child(path, group), f"{max(over.values())} in one row", limit, group
                )
        elif len(fields) > limit:
            _too_many(walk, _child(path, group), str(len(fields)), limit, group, style)
    if style in ("coupon", "storeCard", "generic") and _square_barcode(walk.data):
        combined = len(lists.get("secondaryFields", [])) + len(lists.get("auxiliaryFields", []))
        if combined > 4:
            walk.report.warn(
                path,
                f"With a square barcode a {style} shows at most four secondary and auxiliary "
                f"fields together; this pass has {combined}.",
                "Move the extra fields to backFields, or use a rectangular barcode (PDF417).",
            )


def _too_many(walk: _Walk, path: str, count: str, limit: int, group: str, style: str = "") -> None:
    if limit == 0:
        walk.report.warn(
            path,
            f"A {style} does not show {group}; Wallet ignores them.",
            "Move them to backFields.",
        )
        return
    walk.report.warn(
        path,
        f"This style shows at most {limit} {group} but the pass has {count}; Wallet drops the "
        "rest.",
        "Move the extra fields to backFields.",
    )


def _square_barcode(data: dict[str, Any]) -> bool:
    candidates = data.get("barcodes") if isinstance(data.get("barcodes"), list) else None
    first = (candidates or [data.get("barcode")])[0]
    return isinstance(first, dict) and first.get("format") in SQUARE_BARCODES


def _field_formats(walk: _Walk, item: dict[str, Any], path: str) -> None:
    """A field is formatted as a date or as a number, and its value must fit."""
    report = walk.report
    is_date = "dateStyle" in item or "timeStyle" in item
    is_number = "numberStyle" in item or "currencyCode" in item
    if "numberStyle" in item and "currencyCode" in item:
        # Apple documents them as two ways to format a number; which one wins is undefined.
        report.error(
            path,
            "The field has both currencyCode and numberStyle.",
            "Keep currencyCode for money, numberStyle for other numbers; not both.",
        )
    if is_date and is_number:
        report.error(
            path,
            "The field is formatted as a date and as a number at once.",
            "Keep dateStyle/timeStyle for a date, or numberStyle/currencyCode for a number.",
        )
    value, value_path = item.get("value"), _child(path, "value")
    if not (isinstance(value, str) or _is_number(value)):
        return  # missing or of the wrong type: reported with the value
    if is_date and not is_number:
        _check_date(report, value, value_path)
    elif is_number and not is_date and not _is_number(value):
        which = "currencyCode" if "currencyCode" in item else "numberStyle"
        report.error(
            value_path,
            f"With {which} the value must be a number, not {_describe(value)}.",
            "Write the value as a JSON number without quotes, like 21.75.",
        )


def _data_detectors_on_back_fields_only(walk: _Walk, item: dict[str, Any], path: str) -> None:
    if isinstance(item.get("dataDetectorTypes"), list):
        walk.report.warn(
            _child(path, "dataDetectorTypes"),
            "Wallet runs data detectors on back fields only; here they are ignored.",
            "Remove dataDetectorTypes from this field, or move the field to backFields.",
        )


def _no_alignment(walk: _Walk, item: dict[str, Any], path: str) -> None:
    if item.get("textAlignment") in TEXT_ALIGNMENTS:
        group = _leaf(path).split("[", 1)[0]
        walk.report.warn(
            _child(path, "textAlignment"),
            f"Wallet does not align {group}; textAlignment is ignored here.",
            "Remove textAlignment from this field.",
        )


_RULES: dict[str, _Rule] = {
    "one style": _one_style,
    "grouping only for events and boarding": _grouping_only_for_events_and_boarding,
    "app launch needs an app": _app_launch_needs_an_app,
    "barcode is deprecated": _barcode_is_deprecated,
    "web service": _web_service,
    "relevance": _relevance,
    "a date or an interval": _a_date_or_an_interval,
    "at most ten locations": _at_most_ten_locations,
    "at most ten beacon UUIDs": _at_most_ten_beacon_uuids,
    "minor needs major": _minor_needs_major,
    "barcode message": _barcode_message(BARCODE_FORMATS),
    "legacy barcode message": _barcode_message(LEGACY_BARCODE_FORMATS),
    "barcode fallbacks": _barcode_fallbacks,
    "authentication needs sharingProhibited": _authentication_needs_sharing_prohibited,
    "at most two featured actions": _at_most_two_featured_actions,
    "amount has a currency": _amount_has_a_currency,
    "unique field keys": _unique_field_keys,
    "field counts": _field_counts,
    "field formats": _field_formats,
    "data detectors on back fields only": _data_detectors_on_back_fields_only,
    "no alignment": _no_alignment,
}


# --- package-level rules ------------------------------------------------------------------


def _check_localizations(files: Mapping[str, bytes], report: Report) -> dict[str, dict[str, str]]:
    """Check .lproj folder names and parse every pass.strings; return language -> table."""
    tables: dict[str, dict[str, str]] = {}
    folders = sorted({name.split("/", 1)[0] for name in files if "/" in name})
    for folder in folders:
        if not folder.endswith(".lproj"):
            continue
        lang = folder[: -len(".lproj")]
        if not _LANGUAGE_ID.fullmatch(lang):
            report.warn(
                folder,
                f"{folder} is not named after a language ID, so Wallet never uses it.",
                "Name localization folders like en.lproj, fr.lproj, zh-Hans.lproj or pt_BR.lproj.",
            )
        name = f"{folder}/pass.strings"
        if name not in files:
            continue
        try:
            tables[lang] = strings.parse_strings(files[name])
        except strings.StringsSyntaxError as exc:
            report.error(
                name,
                f"{name} cannot be read at line {exc.line}: {exc.reason}.",
                'Each entry must read "key" = "value"; with quotes escaped as \\" and a final ;.',
            )
    return tables


def _check_personalization(files: Mapping[str, bytes], pass_data: object, report: Report) -> None:
    logos = [
        ref
        for ref in map(images.parse_image_path, files)
        if ref is not None and ref.name == "personalizationLogo"
    ]
    if "personalization.json" not in files:
        for ref in logos:
            report.warn(
                ref.path,
                f"{ref.path} is only used with personalization.json, which the package lacks.",
                "Remove the personalization logo, or add personalization.json.",
            )
        return
    name = "personalization.json"
    data = load_json(files[name], name, report)
    if data is not None:
        _check_personalization_json(report, data)
    # Wallet Developer Guide, "Rewards Enrollment": a personalizable pass adds
    # personalization.json and a personalizationLogo@XX.png, is NFC-enabled ("Rewards enrollment
    # is only available for NFC-enabled reward cards") and is served by a web service that
    # receives the sign-up (POST webServiceURL/v1/passes/.../personalize).
    if not logos:
        report.error(
            "personalizationLogo.png",
            "personalization.json needs a personalizationLogo image for the sign-up form.",
            "Add personalizationLogo@2x.png (150x40 pt, so 300x80 px) and @3x (450x120 px).",
        )
    if isinstance(pass_data, dict):
        if "nfc" not in pass_data:
            report.error(
                "$.nfc",
                "Rewards enrollment (personalization.json) works only on NFC-enabled passes.",
                "Add an nfc dictionary to pass.json, or remove personalization.json.",
            )
        if "webServiceURL" not in pass_data:
            report.error(
                "$.webServiceURL",
                "Rewards enrollment sends the sign-up to the pass's web service, but the pass has "
                "no webServiceURL.",
                "Add webServiceURL and authenticationToken to pass.json.",
            )


def _check_personalization_json(report: Report, data: object) -> None:
    root = "personalization.json:$"
    if not isinstance(data, dict):
        report.error(root, "personalization.json must hold a JSON object.", "Wrap the keys in { }.")
        return
    fields_path = f"{root}.requiredPersonalizationFields"
    if "requiredPersonalizationFields" not in data:
        report.error(
            fields_path,
            "personalization.json has no requiredPersonalizationFields.",
            f"List the data to ask for, from: {', '.join(PERSONALIZATION_FIELDS)}.",
        )
    if "description" not in data:
        report.error(
            f"{root}.description",
            "personalization.json has no description of the program.",
            "Add a short description; the sign-up form shows it under the logo.",
        )
    for key, value in data.items():
        path = _child(root, key)
        if key == "requiredPersonalizationFields":
            if not _expect(report, value, "array", path):
                continue
            if not value:
                report.error(
                    path, "requiredPersonalizationFields is empty.", "Ask for at least one field."
                )
            for index, item in enumerate(value):
                _check_enum(report, item, PERSONALIZATION_FIELDS, f"{path}[{index}]")
            repeated = {item for item in value if isinstance(item, str) and value.count(item) > 1}
            for item in sorted(repeated):
                report.warn(path, f"{item} is listed more than once.", "List each field once.")
        elif key == "description":
            if _expect(report, value, "string", path) and not value.strip():
                report.error(path, "The program description is empty.", "Describe the program.")
        elif key == "termsAndConditions":
            _expect(report, value, "string", path)
        else:
            _unknown_key(
                report, path, ("requiredPersonalizationFields", "description", "termsAndConditions")
            )


_KNOWN_FILES = frozenset({"pass.json", "personalization.json"})
_GENERATED_FILES = frozenset({"manifest.json", "signature"})
# A Pass Designer template (.pkpasstemplate) is a pass folder plus this file.
TOOLING_FILE = "tooling.json"


def _check_unknown_files(files: Mapping[str, bytes], report: Report) -> None:
    for name in files:
        if name in _KNOWN_FILES or images.parse_image_path(name) is not None or unsafe_path(name):
            continue
        folder, _, base = name.rpartition("/")
        if folder.endswith(".lproj") and "/" not in folder and base == "pass.strings":
            continue
        if name == TOOLING_FILE:
            report.warn(
                name,
                f"{name} is Pass Designer's record of the template; Wallet does not read it.",
                f"Leave {name} out of the pass; it only makes the pass bigger.",
            )
            continue
        if name in _GENERATED_FILES:
            report.warn(
                name,
                f"{name} is written when the pass is signed; this copy will be replaced.",
                f"Leave {name} out of the unsigned package.",
            )
            continue
        # The file system on iOS is case-sensitive, so Icon.png is not icon.png; a near miss
        # like pass.string is worth pointing out too.
        candidates = _known_names(name)
        match = next((known for known in candidates if known.lower() == name.lower()), None)
        match = match or next(iter(difflib.get_close_matches(name, candidates, 1, 0.85)), None)
        hint = f" Did you mean {match}?" if match else ""
        report.warn(
            name,
            f"{name} is not a file Wallet uses; it only makes the pass bigger.{hint}",
            "Remove it, or rename it to one of Wallet's file names (names are case-sensitive).",
        )


def _known_names(name: str) -> list[str]:
    folder, slash, _ = name.rpartition("/")
    prefix = f"{folder}{slash}"
    names = [
        f"{prefix}{image}{suffix}.png"
        for image in images.IMAGE_NAMES
        for suffix in ("", "@2x", "@3x")
    ]
    names.append(f"{prefix}pass.strings")
    if not prefix:
        names.extend(_KNOWN_FILES)
    return names
