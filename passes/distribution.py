"""Public pass pages: what a customer sees when they open their download link.

`GET /p/<token>` shows a preview of the pass's front and an "Add to Apple Wallet" link;
`GET /p/<token>/pass.pkpass` is that link. The preview (`preview()` and the
`distribution/_preview.html` partial) is shared with the admin dashboard.

The preview follows what Wallet draws, as described in Apple's Wallet Developer Guide ("Pass
Design and Creation"), closely enough to recognise the pass, not pixel for pixel: numbers and
dates are formatted the en-US way, and Wallet's device time zone is unknown here, so dates keep
the offset they were written with.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import segno
from flask import Blueprint, Response, render_template, request
from markupsafe import Markup

from models import Pass, utcnow
from passes import links, store
from passes.errors import ApiError, Gone, NotFound
from passes.signing import PKPASS_MIMETYPE
from passes.strings import parse_strings
from passes.validation import LEGACY_STYLES, parse_rgb, parse_w3c_datetime

bp = Blueprint("distribution", __name__, template_folder="templates")

STRIP_STYLES = ("coupon", "eventTicket", "storeCard")
# The page shows only what the pass shows and builds on nothing outside itself: no scripts,
# no external requests (the token in the URL must not leak through a Referer either).
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Cache-Control": "private, no-cache",
}


# --- The preview ------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    label: str
    value: str
    align: str = ""  # a CSS text-align, or "" for the row's natural alignment


@dataclass(frozen=True)
class Barcode:
    format: str  # "QR", "PDF417", "Aztec" or "Code128"
    svg: Markup | None  # drawn server-side (QR only); None: show `text` instead
    text: str  # what the customer can read out if the code cannot be scanned


@dataclass(frozen=True)
class Preview:
    """Everything the preview partial shows, already localized and formatted."""

    style: str
    language: str | None
    organization_name: str
    description: str
    logo_text: str
    background: str
    foreground: str
    label: str
    logo: str | None  # data: URIs, so the preview needs no further requests
    strip: str | None
    thumbnail: str | None
    header: list[Field] = field(default_factory=list)
    primary: list[Field] = field(default_factory=list)
    secondary: list[Field] = field(default_factory=list)
    auxiliary: list[Field] = field(default_factory=list)
    back: list[Field] = field(default_factory=list)
    barcode: Barcode | None = None
    voided: bool = False
    expired: bool = False


def preview(pass_: Pass, accept_languages: Iterable[str] = ()) -> Preview:
    """The front of the pass as Wallet would show it, in the best of the pass's languages."""
    files = store.pass_files(pass_)
    pass_json = json.loads(files["pass.json"])
    language = _pick_language(files, accept_languages)
    strings = _strings(files, language)
    style = next((s for s in LEGACY_STYLES if isinstance(pass_json.get(s), dict)), "generic")
    fields = pass_json.get(style) or {}
    foreground = css_color(pass_json.get("foregroundColor"), "rgb(0, 0, 0)")
    # The images each style shows (Apple's guide, Table 4-1): an event ticket shows a strip
    # or a thumbnail, never both.
    strip = _image(files, "strip", language) if style in STRIP_STYLES else None
    thumbnail = None
    if style == "generic" or (style == "eventTicket" and strip is None):
        thumbnail = _image(files, "thumbnail", language)

    state = no_longer_valid(pass_json)

    def row(name: str) -> list[Field]:
        return _fields(fields.get(name), strings)

    return Preview(
        style=style,
        language=language,
        organization_name=_text(pass_json.get("organizationName"), strings),
        description=_text(pass_json.get("description"), strings),
        logo_text=_text(pass_json.get("logoText"), strings),
        background=css_color(pass_json.get("backgroundColor"), "rgb(255, 255, 255)"),
        foreground=foreground,
        label=css_color(pass_json.get("labelColor"), foreground),
        logo=_image(files, "logo", language),
        strip=strip,
        thumbnail=thumbnail,
        header=row("headerFields"),
        primary=row("primaryFields"),
        secondary=row("secondaryFields"),
        auxiliary=row("auxiliaryFields"),
        back=row("backFields"),
        barcode=_barcode(pass_json),
        voided=state == "voided",
        expired=state == "expired",
    )


def localized_strings(
    files: Mapping[str, bytes], accept_languages: Iterable[str]
) -> dict[str, str]:
    """The pass.strings of the best of the package's languages for the reader (or none)."""
    return _strings(files, _pick_language(files, accept_languages))


def _pick_language(files: Mapping[str, bytes], accept_languages: Iterable[str]) -> str | None:
    available = {name.split(".lproj/")[0] for name in files if name.endswith(".lproj/pass.strings")}
    wanted = [*accept_languages, "en"]  # English when the browser asks for nothing we have
    for asked in wanted:
        tag = asked.replace("_", "-").lower()
        for candidate in sorted(available):
            normal = candidate.replace("_", "-").lower()
            # "fr-CA" finds fr.lproj; "zh-Hans-CN" finds zh-Hans.lproj.
            if tag == normal or tag.startswith(normal + "-"):
                return candidate
    return None


def _strings(files: Mapping[str, bytes], language: str | None) -> dict[str, str]:
    if language is None:
        return {}
    try:
        return parse_strings(files[f"{language}.lproj/pass.strings"])
    except ValueError:
        return {}  # a broken strings file shows the keys, as Wallet does


def _text(value: Any, strings: Mapping[str, str]) -> str:
    if not isinstance(value, str):
        return ""
    return strings.get(value, value)


def _fields(raw: Any, strings: Mapping[str, str]) -> list[Field]:
    if not isinstance(raw, list):
        return []
    return [
        Field(
            label=_text(f.get("label"), strings),
            value=format_value(f, strings),
            align=_ALIGNMENTS.get(f.get("textAlignment", ""), ""),
        )
        for f in raw
        if isinstance(f, dict)
    ]


_ALIGNMENTS = {
    "PKTextAlignmentLeft": "left",
    "PKTextAlignmentCenter": "center",
    "PKTextAlignmentRight": "right",
}


def css_color(value: Any, default: str) -> str:
    """An `rgb(r, g, b)` from pass.json, rebuilt from its numbers so nothing else gets into CSS."""
    rgb = parse_rgb(value) if isinstance(value, str) else None
    if rgb is None:
        return default
    red, green, blue = (min(part, 255) for part in rgb)
    return f"rgb({red}, {green}, {blue})"


def _image(files: Mapping[str, bytes], name: str, language: str | None) -> str | None:
    # @2x first: most phones have at least that density, and it is still small.
    candidates = [f"{name}@2x.png", f"{name}.png"]
    if language:
        candidates = [f"{language}.lproj/{c}" for c in candidates] + candidates
    for candidate in candidates:
        if candidate in files:
            return "data:image/png;base64," + base64.b64encode(files[candidate]).decode()
    return None


def no_longer_valid(pass_json: Mapping[str, Any]) -> str | None:
    """Why Wallet shows the pass as no longer valid: "voided", "expired", or None.

    Expired means an `expirationDate` (a W3C date, as validation reads it) at or before now.
    """
    if pass_json.get("voided") is True:
        return "voided"
    expires = pass_json.get("expirationDate")
    when = parse_w3c_datetime(expires) if isinstance(expires, str) else None
    if when is not None and when <= utcnow():
        return "expired"
    return None


# --- Formatting values ------------------------------------------------------------------

_CURRENCY_SYMBOLS = {
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "JPY": "¥",
    "CNY": "CN¥",
    "INR": "₹",
    "KRW": "₩",
    "CAD": "CA$",
    "AUD": "A$",
    "NZD": "NZ$",
    "HKD": "HK$",
    "MXN": "MX$",
    "BRL": "R$",
}
# ISO 4217 minor units where they are not 2.
_CURRENCY_DIGITS = {
    **dict.fromkeys(("JPY", "KRW", "VND", "CLP", "ISK", "PYG", "UGX", "XAF", "XOF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}
_DATE_FORMATS = {
    "PKDateStyleShort": "{d.month}/{d.day}/{d:%y}",
    "PKDateStyleMedium": "{d:%b} {d.day}, {d.year}",
    "PKDateStyleLong": "{d:%B} {d.day}, {d.year}",
    "PKDateStyleFull": "{d:%A}, {d:%B} {d.day}, {d.year}",
}
_TIME_FORMATS = {
    "PKDateStyleShort": "{hour}:{d:%M} {d:%p}",
    "PKDateStyleMedium": "{hour}:{d:%M}:{d:%S} {d:%p}",
    "PKDateStyleLong": "{hour}:{d:%M}:{d:%S} {d:%p} {zone}",
    "PKDateStyleFull": "{hour}:{d:%M}:{d:%S} {d:%p} {zone}",
}


def format_value(pass_field: Mapping[str, Any], strings: Mapping[str, str]) -> str:
    """A field's value as Wallet shows it: localized, or as a currency, number or date."""
    value = pass_field.get("value")
    if isinstance(value, bool):  # not a pass.json value type; show it rather than crash
        return str(value).lower()
    if isinstance(value, int | float):
        code = pass_field.get("currencyCode")
        if isinstance(code, str) and code:
            return format_currency(value, code.upper())
        return format_number(value, pass_field.get("numberStyle"))
    if not isinstance(value, str):
        return ""
    date_style = pass_field.get("dateStyle", "PKDateStyleNone")
    time_style = pass_field.get("timeStyle", "PKDateStyleNone")
    if date_style in _DATE_FORMATS or time_style in _TIME_FORMATS:
        when = _parse_date(value)
        if when is not None:
            return format_date(when, date_style, time_style)
    return strings.get(value, value)


def format_currency(amount: float, code: str) -> str:
    digits = _CURRENCY_DIGITS.get(code, 2)
    number = f"{_formattable(abs(amount)):,.{digits}f}"
    sign = "-" if amount < 0 and number.strip("0.,") else ""
    symbol = _CURRENCY_SYMBOLS.get(code)
    if symbol:
        return f"{sign}{symbol}{number}"
    return f"{sign}{code} {number}"  # en-US puts an unknown code before the number, spaced


def format_number(value: float, style: Any = None) -> str:
    if style == "PKNumberStylePercent":
        return _decimal(value * 100) + "%"
    if style == "PKNumberStyleScientific":
        mantissa, _, exponent = f"{_formattable(value):.6E}".partition("E")
        return f"{mantissa.rstrip('0').rstrip('.')}E{int(exponent)}"
    if style == "PKNumberStyleDecimal":
        return _decimal(value)
    # No style (or spell-out, which needs a language library): the number as written.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _formattable(value: float) -> float | Decimal:
    """The value as a float, as Python formats numbers; an int too large for one (stored
    before the API refused them) as an exact Decimal, so that it shows instead of raising
    OverflowError."""
    try:
        return float(value)
    except OverflowError:
        return Decimal(value)


def _decimal(value: float) -> str:
    if isinstance(value, int) or value.is_integer():
        return f"{int(value):,}"
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def format_date(when: datetime, date_style: str, time_style: str) -> str:
    hour = when.hour % 12 or 12
    zone = when.strftime("%Z") or "UTC"
    parts = []
    if date_style in _DATE_FORMATS:
        parts.append(_DATE_FORMATS[date_style].format(d=when))
    if time_style in _TIME_FORMATS:
        parts.append(_TIME_FORMATS[time_style].format(d=when, hour=hour, zone=zone))
    return " at ".join(parts)


def _parse_date(value: Any) -> datetime | None:
    return parse_w3c_datetime(value) if isinstance(value, str) else None


# --- Barcodes -----------------------------------------------------------------------------


def _barcode(pass_json: Mapping[str, Any]) -> Barcode | None:
    # Wallet shows the first entry of `barcodes` it supports; `barcode` is the pre-iOS 9 key.
    candidates = pass_json.get("barcodes")
    if not isinstance(candidates, list) or not candidates:
        candidates = [pass_json.get("barcode")]
    raw = candidates[0]
    if not isinstance(raw, dict) or not isinstance(raw.get("message"), str):
        return None
    message: str = raw["message"]
    kind = str(raw.get("format", "")).removeprefix("PKBarcodeFormat")
    alt_text = raw.get("altText") if isinstance(raw.get("altText"), str) else None
    if kind != "QR":
        # No library here draws PDF417, Aztec or Code 128; the text lets staff type it in.
        return Barcode(format=kind, svg=None, text=alt_text or message)
    try:
        svg = qr_svg(message, raw.get("messageEncoding"))
    except segno.DataOverflowError:  # longer than any QR code holds: Wallet shows none either
        return Barcode(format=kind, svg=None, text=alt_text or message)
    return Barcode(format=kind, svg=svg, text=alt_text or "")


def qr_svg(message: str, encoding: Any = None) -> Markup:
    """The QR code Wallet would draw, as inline SVG that scales to its box."""
    # Wallet turns the message into bytes with messageEncoding (ISO-8859-1 in most passes);
    # scanners then read those bytes, so encode the same way.
    try:
        payload = message.encode(encoding if isinstance(encoding, str) else "iso-8859-1")
    except (LookupError, UnicodeEncodeError):
        payload = message.encode("utf-8")
    code = segno.make_qr(payload, error="m", boost_error=False)
    # border=4: the quiet zone the QR standard asks for, so the code scans off a screen.
    svg = code.svg_inline(border=4, omitsize=True, svgclass="qr", lineclass=None, dark="#000")
    return Markup(svg)  # segno's own markup: only path data derived from the bytes


# --- Routes -------------------------------------------------------------------------------


def _pass_for(token: str) -> Pass:
    pass_type_identifier, serial_number = links.read_download_token(token, utcnow())
    found = store.find_pass(pass_type_identifier, serial_number)
    if found is None:
        raise NotFound("this pass no longer exists")  # a deleted pass; its link still verifies
    return found


@bp.get("/p/<token>")
def page(token: str) -> Response:
    pass_ = _pass_for(token)
    shown = preview(pass_, [tag for tag, _ in request.accept_languages])
    html = render_template("distribution/pass.html", preview=shown, token=token)
    return Response(html, headers=PAGE_HEADERS)


@bp.get("/p/<token>/pass.pkpass")
def download(token: str) -> Response:
    pass_ = _pass_for(token)
    # Wallet would add a voided or expired pass only to show it as unusable: refuse it here.
    reason = no_longer_valid(store.pass_json(pass_))
    if reason is not None:
        raise Gone(f"this pass has {'been voided' if reason == 'voided' else 'expired'}")
    response = Response(store.committed_pkpass(pass_), mimetype=PKPASS_MIMETYPE)
    response.headers["Content-Disposition"] = f'attachment; filename="{pass_.serial_number}.pkpass"'
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.errorhandler(ApiError)
def error_page(error: ApiError) -> Response:
    """People follow these links, so failures get a page to read rather than JSON."""
    html = render_template("distribution/error.html", error=error)
    return Response(html, status=error.status, headers=PAGE_HEADERS)
