"""The dashboard's pass form: the fields a pass shows, as inputs, and the data they submit.

The form only reads what was typed into the data the admin API takes (`pass` in its POST and
PATCH bodies); the dashboard then calls the same domain functions as the API, so a change made
here is checked exactly as one made through the API.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from passes.errors import ValidationError
from passes.json_body import json_object
from passes.validation import LEGACY_STYLES, Problem

ROWS = ("headerFields", "primaryFields", "secondaryFields", "auxiliaryFields", "backFields")
ROW_NAMES = {
    "headerFields": "Header",
    "primaryFields": "Primary",
    "secondaryFields": "Secondary",
    "auxiliaryFields": "Auxiliary",
    "backFields": "Back",
}
JSON_INPUT = "json"
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


@dataclass(frozen=True)
class Input:
    """One field of the pass, as a text input named `name` showing `value`."""

    name: str
    path: str  # the value's JSON path in pass.json, as validation names it
    row: str
    key: str
    label: str
    value: str
    numeric: bool
    shows: str | None = None  # what Wallet shows for a value that is a localization key


def style_of(pass_json: Mapping[str, Any]) -> str | None:
    return next((s for s in LEGACY_STYLES if isinstance(pass_json.get(s), dict)), None)


def inputs(
    pass_json: Mapping[str, Any],
    typed: Mapping[str, str] | None = None,
    strings: Mapping[str, str] | None = None,
) -> list[Input]:
    """An input for each field whose value is text or a number, showing what was `typed`
    (a form being shown again) or else the value the pass has; labels and keys are
    localized with `strings` (a pass.strings) where they are keys of it."""
    strings = strings or {}
    style = style_of(pass_json)
    if style is None:
        return []
    found = []
    for row in ROWS:
        fields = pass_json[style].get(row)
        for index, field in enumerate(fields if isinstance(fields, list) else []):
            if not isinstance(field, dict) or not _editable(field.get("value")):
                continue  # dates as objects, nulls and the like: the JSON box takes them
            name = f"{row}.{index}"
            shown = _shown(field["value"])
            found.append(
                Input(
                    name=name,
                    path=f"$.{style}.{row}[{index}].value",
                    row=ROW_NAMES[row],
                    key=str(field.get("key", "")),
                    label=_localized(field.get("label") or field.get("key") or "", strings),
                    value=typed.get(name, shown) if typed is not None else shown,
                    numeric=_is_number(field["value"]),
                    shows=strings.get(shown) if isinstance(field["value"], str) else None,
                )
            )
    return found


def by_row(found: list[Input]) -> list[tuple[str, list[Input]]]:
    """The inputs in rows, in the order Wallet shows the rows."""
    rows: dict[str, list[Input]] = {}
    for field in found:
        rows.setdefault(field.row, []).append(field)
    return list(rows.items())


@dataclass(frozen=True)
class Submission:
    """What the form asks for, as a partial pass.json, and what could not be read into it
    (those inputs are left out of `data`, so the rest can still be checked)."""

    data: dict[str, Any]
    problems: list[Problem]


def read(pass_json: Mapping[str, Any], form: Mapping[str, str]) -> Submission:
    """The partial pass.json the form asks for: the field rows whose values changed (whole,
    as a merge patch replaces lists), with the JSON box's object merged over them."""
    problems: list[Problem] = []
    rows: dict[str, list[Any]] = {}
    style = style_of(pass_json)
    for field in inputs(pass_json):
        typed = form.get(field.name)
        if typed is None or typed == field.value:
            continue  # unchanged fields stay as they are, so the template still decides them
        row, index = field.name.split(".")
        if row not in rows:
            rows[row] = list(pass_json[style][row])  # type: ignore[index]
        value: Any = typed
        if field.numeric:
            value = _number(typed)
            if value is None:
                problems.append(
                    Problem(field.path, f"{field.label} must be a number, like 120 or 4.5.", "")
                )
                continue
        rows[row][int(index)] = {**rows[row][int(index)], "value": value}
    extra: dict[str, Any] = {}
    text = form.get(JSON_INPUT, "").strip()
    if text:
        try:
            extra = json_object(text.encode(), path="$", what="the JSON box")
        except ValidationError as error:
            problems.append(Problem(error.path or "$", error.message, ""))
    if not rows:
        return Submission(extra, problems)
    assert style is not None
    # The JSON box wins where both say something: it is the more deliberate of the two.
    style_part = extra.get(style, {})
    if not isinstance(style_part, dict):
        # null removes the style, anything else is for validation to refuse
        return Submission(extra, problems)
    return Submission({**extra, style: {**rows, **style_part}}, problems)


def _localized(text: Any, strings: Mapping[str, str]) -> str:
    return strings.get(text, str(text)) if isinstance(text, str) else str(text)


def _editable(value: Any) -> bool:
    return isinstance(value, str) or _is_number(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _number(text: str) -> int | float | None:
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    value = float(text)
    return value if math.isfinite(value) else None
