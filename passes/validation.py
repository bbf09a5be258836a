"""Checking an unsigned pass package against Apple's rules, so Wallet never gets a broken pass.

Every problem is reported at once. Errors are what Wallet refuses or what Apple's documentation
says a pass must (not) do; warnings are what Wallet ignores, crops or shows badly. Sources:
Apple's "Wallet Passes" reference (Pass, PassFields, PassFieldContent, SemanticTags, ...) and the
archived Wallet Developer Guide ("Pass Design and Creation", "Rewards Enrollment"); where Apple is
silent the comment next to the rule says why it is there.
"""

from __future__ import annotations

import base64
import binascii
import codecs
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


# --- the rules, as data -------------------------------------------------------------------

LEGACY_STYLES = ("boardingPass", "coupon", "eventTicket", "generic", "storeCard")
# "Creating a poster generic pass" (iOS 27): posterGeneric goes beside one of the styles above;
# Wallet shows the poster where it can and the other style on older devices.
POSTER_STYLES = ("posterGeneric",)
STYLES = (*LEGACY_STYLES, *POSTER_STYLES)
REQUIRED_KEYS = (
    "description",
    "formatVersion",
    "organizationName",
    "passTypeIdentifier",
    "serialNumber",
    "teamIdentifier",
)
# iOS 18 poster event tickets: the event guide and menu links; upcoming events (iOS 26) repeat
# them in their URLs dictionary.
EVENT_GUIDE_KEYS = (
    "accessibilityURL",
    "addOnURL",
    "bagPolicyURL",
    "contactVenueEmail",
    "contactVenuePhoneNumber",
    "contactVenueWebsite",
    "directionsInformationURL",
    "merchandiseURL",
    "orderFoodURL",
    "parkingInformationURL",
    "purchaseParkingURL",
    "sellURL",
    "transferURL",
    "transitInformationURL",
)
# iOS 26 semantic boarding passes: the airline and services page ("Creating an airline
# boarding pass using semantic tags", "Offer additional flight information").
AIRLINE_SERVICE_KEYS = (
    "businessChatIdentifier",
    "changeSeatURL",
    "entertainmentURL",
    "managementURL",
    "purchaseAdditionalBaggageURL",
    "purchaseLoungeAccessURL",
    "purchaseWifiURL",
    "registerServiceAnimalURL",
    "reportLostBagURL",
    "requestWheelchairURL",
    "trackBagsURL",
    "transitProviderEmail",
    "transitProviderPhoneNumber",
    "transitProviderWebsiteURL",
    "upgradeURL",
)
STRING_KEYS = frozenset(
    {
        "description",
        "organizationName",
        "passTypeIdentifier",
        "serialNumber",
        "teamIdentifier",
        "appLaunchURL",
        "logoText",
        "groupingIdentifier",
        # Poster event tickets put this one beside the logo instead of logoText.
        "eventLogoText",
        # An SF Symbol shown as the logo (apple/pass-builder's Pass.proto).
        "logoSymbolName",
        *EVENT_GUIDE_KEYS,
        *AIRLINE_SERVICE_KEYS,
    }
)
BOOLEAN_KEYS = frozenset(
    {
        "voided",
        "sharingProhibited",
        "suppressStripShine",
        "suppressHeaderDarkening",
        "useAutomaticColors",
    }
)
COLOR_KEYS = frozenset(
    {"backgroundColor", "foregroundColor", "labelColor", "footerBackgroundColor", "stripColor"}
)
DATE_KEYS = frozenset({"expirationDate", "relevantDate"})
TRANSIT_TYPES = (
    "PKTransitTypeAir",
    "PKTransitTypeBoat",
    "PKTransitTypeBus",
    "PKTransitTypeGeneric",
    "PKTransitTypeTrain",
)
# The deprecated `barcode` dictionary documents only these three.
LEGACY_BARCODE_FORMATS = ("PKBarcodeFormatQR", "PKBarcodeFormatPDF417", "PKBarcodeFormatAztec")
IOS9_BARCODE_FORMATS = (*LEGACY_BARCODE_FORMATS, "PKBarcodeFormatCode128")
# Pass.Barcodes: "Wallet supports QR, PDF 417, Aztec, Code 128, Code 39, Codabar, EAN 13, and
# Interleaved 2 of 5 (ITF)", the last four from iOS 27, with an older format as fallback.
IOS27_BARCODE_FORMATS = (
    "PKBarcodeFormatCode39",
    "PKBarcodeFormatCodabar",
    "PKBarcodeFormatEAN13",
    "PKBarcodeFormatI2of5",
)
BARCODE_FORMATS = (*IOS9_BARCODE_FORMATS, *IOS27_BARCODE_FORMATS)
SQUARE_BARCODES = ("PKBarcodeFormatQR", "PKBarcodeFormatAztec")
FIELD_GROUPS = (
    "headerFields",
    "primaryFields",
    "secondaryFields",
    "auxiliaryFields",
    "backFields",
    "additionalInfoFields",
    "footerFields",
)
# Pass Designer (apple/pass-builder) writes an `_id` into every field, seat and featured
# action of the pass.json it saves; Wallet does not read it, and it does no harm.
PASS_DESIGNER_ID = "_id"
FIELD_KEYS = (
    "key",
    "value",
    "label",
    "attributedValue",
    "changeMessage",
    "dataDetectorTypes",
    "textAlignment",
    "dateStyle",
    "timeStyle",
    "ignoresTimeZone",
    "isRelative",
    "numberStyle",
    "currencyCode",
    "semantics",
    "row",
)
TEXT_ALIGNMENTS = (
    "PKTextAlignmentLeft",
    "PKTextAlignmentCenter",
    "PKTextAlignmentRight",
    "PKTextAlignmentNatural",
)
DATE_STYLES = (
    "PKDateStyleNone",
    "PKDateStyleShort",
    "PKDateStyleMedium",
    "PKDateStyleLong",
    "PKDateStyleFull",
)
NUMBER_STYLES = (
    "PKNumberStyleDecimal",
    "PKNumberStylePercent",
    "PKNumberStyleScientific",
    "PKNumberStyleSpellOut",
)
DATA_DETECTORS = (
    "PKDataDetectorTypePhoneNumber",
    "PKDataDetectorTypeLink",
    "PKDataDetectorTypeAddress",
    "PKDataDetectorTypeCalendarEvent",
)
# "In general, a pass can have up to three header fields, a single primary field, up to four
# secondary fields, and up to four auxiliary fields. Boarding passes can have up to two primary
# fields and up to five auxiliary fields."
FIELD_LIMITS = {"headerFields": 3, "primaryFields": 1, "secondaryFields": 4, "auxiliaryFields": 4}
BOARDING_FIELD_LIMITS = {**FIELD_LIMITS, "primaryFields": 2, "auxiliaryFields": 5}
# "A poster generic pass can have a header field, up to four primary fields, two footer
# fields, back fields, and additional info field."
POSTER_GENERIC_FIELD_LIMITS = {
    "headerFields": 1,
    "primaryFields": 4,
    "secondaryFields": 0,
    "auxiliaryFields": 0,
    "footerFields": 2,
}
# Field groups only some layouts show (the poster event ticket is an eventTicket).
_ONLY_SHOWN_BY = {
    "additionalInfoFields": ("eventTicket", "posterGeneric"),
    "footerFields": ("posterGeneric",),
}
_POSTER_NAMES = {"eventTicket": "poster event tickets", "posterGeneric": "poster generic passes"}
_TO_BACK_FIELDS = "Move them to backFields."
# Defining the metadata of your Wallet Pass, "Add Featured Actions": Wallet shows up to two.
FEATURED_ACTION_TYPES = (
    "addToBalance",
    "bookAppointment",
    "bookCar",
    "bookFlight",
    "bookStay",
    "call",
    "listenToMusic",
    "membershipBenefits",
    "order",
    "place",
    "shop",
    "viewOffersRewards",
    "viewSchedule",
    "watchTrailer",
)
MAX_FEATURED_ACTIONS = 2
STYLE_SCHEMES = ("posterEventTicket", "eventTicket", "boardingPass", "semanticBoardingPass")
PERSONALIZATION_FIELDS = (
    "PKPassPersonalizationFieldName",
    "PKPassPersonalizationFieldPostalCode",
    "PKPassPersonalizationFieldEmailAddress",
    "PKPassPersonalizationFieldPhoneNumber",
)
EVENT_TYPES = (
    "PKEventTypeGeneric",
    "PKEventTypeLivePerformance",
    "PKEventTypeMovie",
    "PKEventTypeSports",
    "PKEventTypeConference",
    "PKEventTypeConvention",
    "PKEventTypeWorkshop",
    "PKEventTypeSocialGathering",
)
# iOS 26 boarding pass badges (SemanticTags, "Allowed values"); Apple adds values over time,
# so an unknown one is a warning.
PASSENGER_CAPABILITIES = (
    "PKPassengerCapabilityCarryon",
    "PKPassengerCapabilityLapInfant",
    "PKPassengerCapabilityPersonalItem",
    "PKPassengerCapabilityPreboarding",
    "PKPassengerCapabilityPriorityBoarding",
)
SECURITY_PROGRAMS = (
    "PKTransitSecurityProgramCLEAR",
    "PKTransitSecurityProgramGlobalEntry",
    "PKTransitSecurityProgramITD",
    "PKTransitSecurityProgramITI",
    "PKTransitSecurityProgramOSS",
    "PKTransitSecurityProgramTSAPreCheck",
    "PKTransitSecurityProgramTSAPreCheckTouchlessID",
)
# SemanticTags with the iOS 18 and iOS 26 additions, by the kind of their value (see
# _check_value). Wallet refuses a pass whose semantic value has the wrong type, and ignores
# a tag it does not know.
SEMANTIC_TAGS: dict[str, str] = {
    **dict.fromkeys(
        (
            "additionalTicketAttributes",
            "admissionLevel",
            "admissionLevelAbbreviation",
            "airlineCode",
            "attendeeName",
            "awayTeamAbbreviation",
            "awayTeamLocation",
            "awayTeamName",
            "boardingGroup",
            "boardingSequenceNumber",
            "boardingZone",
            "carNumber",
            "confirmationNumber",
            "departureAirportCode",
            "departureAirportName",
            "departureCityName",
            "departureGate",
            "departureLocationDescription",
            "departurePlatform",
            "departureStationName",
            "departureTerminal",
            "destinationAirportCode",
            "destinationAirportName",
            "destinationCityName",
            "destinationGate",
            "destinationLocationDescription",
            "destinationPlatform",
            "destinationStationName",
            "destinationTerminal",
            "entranceDescription",
            "eventLiveMessage",
            "eventName",
            "flightCode",
            "genre",
            "homeTeamAbbreviation",
            "homeTeamLocation",
            "homeTeamName",
            "internationalDocumentsVerifiedDeclarationName",
            "leagueAbbreviation",
            "leagueName",
            "membershipProgramName",
            "membershipProgramNumber",
            "membershipProgramStatus",
            "priorityStatus",
            "securityScreening",
            "sportName",
            "ticketFareClass",
            "transitProvider",
            "transitStatus",
            "transitStatusReason",
            "vehicleName",
            "vehicleNumber",
            "vehicleType",
            "venueEntrance",
            "venueEntranceDoor",
            "venueEntranceGate",
            "venueEntrancePortal",
            "venueName",
            "venuePhoneNumber",
            "venuePlaceID",
            "venueRegionName",
            "venueRoom",
        ),
        "string",
    ),
    # Apple's pages say departure/destinationLocationTimeZone, pass-builder writes
    # departure/destinationAirportTimeZone; Wallet reads both, and eventTimeZone.
    **dict.fromkeys(
        (
            "departureAirportTimeZone",
            "departureLocationTimeZone",
            "destinationAirportTimeZone",
            "destinationLocationTimeZone",
            "eventTimeZone",
        ),
        "timeZone",
    ),
    **dict.fromkeys(
        (
            "currentArrivalDate",
            "currentBoardingDate",
            "currentDepartureDate",
            "eventEndDate",
            "eventStartDate",
            "originalArrivalDate",
            "originalBoardingDate",
            "originalDepartureDate",
            "venueBoxOfficeOpenDate",
            "venueCloseDate",
            "venueDoorsOpenDate",
            "venueFanZoneOpenDate",
            "venueGatesOpenDate",
            "venueOpenDate",
            "venueParkingLotsOpenDate",
        ),
        "date",
    ),
    **dict.fromkeys(
        (
            "albumIDs",
            "artistIDs",
            "loungePlaceIDs",
            "passengerAirlineSSRs",
            "passengerInformationSSRs",
            "passengerServiceSSRs",
            "performerNames",
            "playlistIDs",
        ),
        "strings",
    ),
    **dict.fromkeys(
        (
            "departureLocationSecurityPrograms",
            "destinationLocationSecurityPrograms",
            "passengerEligibleSecurityPrograms",
        ),
        "securityPrograms",
    ),
    "passengerCapabilities": "passengerCapabilities",
    "internationalDocumentsAreVerified": "boolean",
    **dict.fromkeys(("balance", "totalPrice"), "currency"),
    **dict.fromkeys(("departureLocation", "destinationLocation", "venueLocation"), "location"),
    "duration": "number",
    "flightNumber": "number",
    "silenceRequested": "boolean",
    "tailgatingAllowed": "boolean",
    "passengerName": "person",
    "seats": "seats",
    "wifiAccess": "wifi",
    "eventStartDateInfo": "eventDateInfo",
    "airPlay": "airplay",
    "eventType": "eventType",
}
# Spellings seen in generators (some from pass-builder's model) that Wallet's own semantics
# reader does not know, with the tag it does read.
SEMANTIC_MISSPELLINGS = {
    "airlineLoungePlaceID": "loungePlaceIDs (a list)",
    "airplay": "airPlay",
    "departureAirportSecurityPrograms": "departureLocationSecurityPrograms",
    "destinationAirportSecurityPrograms": "destinationLocationSecurityPrograms",
}
PERSON_NAME_KEYS = ("familyName", "givenName", "middleName", "namePrefix", "nameSuffix", "nickname")
SEAT_KEYS = (
    "seatAisle",
    "seatDescription",
    "seatIdentifier",
    "seatLevel",
    "seatNumber",
    "seatRow",
    "seatSection",
    "seatType",
)

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
        pass_data = _load_json(files["pass.json"], "pass.json", report)
    style, posters = None, ()
    if pass_data is not None:
        checker = _PassChecker(report, localizations)
        checker.check(pass_data)
        style, posters = checker.style, checker.posters

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


def _load_json(data: bytes, name: str, report: Report) -> object:
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


# --- pass.json ----------------------------------------------------------------------------


class _PassChecker:
    """Walks one pass.json document, adding every problem to the report."""

    def __init__(self, report: Report, localizations: Mapping[str, Mapping[str, str]]) -> None:
        self.report = report
        # language -> pass.strings table, to read localized change messages.
        self.localizations = localizations
        # The style older devices show (posterGeneric when it is alone), and the poster
        # layouts newer ones may show instead: posterGeneric, posterEventTicket.
        self.style: str | None = None
        self.posters: tuple[str, ...] = ()
        # Field keys seen in the fields being checked: unique within one layout.
        self.field_keys: dict[str, str] = {}

    def check(self, data: object) -> None:
        report = self.report
        if not isinstance(data, dict):
            report.error(
                "$",
                f"pass.json must hold a JSON object, not {_describe(data)}.",
                "Wrap the keys in { }.",
            )
            return
        for key in REQUIRED_KEYS:
            if key not in data:
                report.error(
                    _child("$", key),
                    f"pass.json has no {key}, which every pass needs.",
                    f"Add the {key} key at the top level of pass.json.",
                )
        self._check_style_keys(data)
        for key, value in data.items():
            path = _child("$", key)
            if key in STYLES:
                self._check_style(key, value, path, data)
            elif key in STRING_KEYS:
                if _expect(report, value, "string", path):
                    self._check_string_key(key, value, path, data)
            elif key in BOOLEAN_KEYS:
                _expect(report, value, "boolean", path)
            elif key in COLOR_KEYS:
                _check_color(report, value, path)
            elif key in DATE_KEYS:
                _check_date(report, value, path)
            elif key in _TOP_LEVEL_CHECKS:
                _TOP_LEVEL_CHECKS[key](self, value, path, data)
            else:
                _unknown_key(report, path, TOP_LEVEL_KEYS)
        self._check_web_service(data)
        self._check_relevance(data)

    # top level -----------------------------------------------------------------------

    def _check_style_keys(self, data: dict[str, Any]) -> None:
        legacy = [key for key in LEGACY_STYLES if key in data]
        self.posters = tuple(key for key in POSTER_STYLES if key in data)
        problem = style_problem(data)
        if problem:
            fix = (
                "Keep one style key (posterGeneric may go beside it) and move its fields into it."
                if legacy
                else f"Add one of {', '.join(LEGACY_STYLES)} with the pass's fields."
            )
            self.report.error("$", problem, fix)
            return
        self.style = legacy[0] if legacy else self.posters[0]
        if not legacy:
            self.report.warn(
                "$",
                f"{self.style} needs iOS 27; older devices cannot show a pass without one of "
                f"{', '.join(LEGACY_STYLES)} beside it.",
                f"Add a generic (or storeCard, coupon, eventTicket) dictionary beside {self.style} "
                "with the same information.",
            )
        schemes = data.get("preferredStyleSchemes")
        if self.style == "eventTicket" and isinstance(schemes, list):
            # Poster event tickets are event tickets that ask for the poster scheme.
            self.posters += ("posterEventTicket",) if "posterEventTicket" in schemes else ()

    def _check_string_key(self, key: str, value: str, path: str, data: dict[str, Any]) -> None:
        report = self.report
        if key == "passTypeIdentifier" and not value.startswith("pass."):
            report.error(
                path,
                f"The pass type identifier {json.dumps(value)} does not start with 'pass.', so "
                "no Apple certificate can sign it.",
                "Use the identifier registered with Apple, like pass.com.example.membership.",
            )
        elif key == "teamIdentifier" and not _TEAM_ID.fullmatch(value):
            report.warn(
                path,
                f"The team identifier {json.dumps(value)} does not look like an Apple Team ID "
                "(10 capital letters and digits).",
                "Copy the Team ID (the OU of the pass certificate) exactly.",
            )
        elif key == "serialNumber" and not value:
            report.error(
                path, "The serial number is empty.", "Give every pass a unique serial number."
            )
        elif key in ("description", "organizationName") and not value.strip():
            report.warn(
                path,
                f"{key} is empty; VoiceOver and the lock screen show it.",
                f"Write a short {key}.",
            )
        elif key == "groupingIdentifier" and self.style not in (
            None,
            "eventTicket",
            "boardingPass",
        ):
            report.warn(
                path,
                f"groupingIdentifier is only for event tickets and boarding passes; a {self.style} "
                "ignores it.",
                "Remove groupingIdentifier.",
            )
        elif key == "logoSymbolName" and not _SF_SYMBOL.fullmatch(value):
            report.warn(
                path,
                f"{json.dumps(value)} does not look like an SF Symbol name, so Wallet may show no "
                "logo.",
                "Copy the symbol's name from the SF Symbols app, like star.circle.fill.",
            )
        elif key == "appLaunchURL" and "associatedStoreIdentifiers" not in data:
            report.warn(
                path,
                "appLaunchURL does nothing without associatedStoreIdentifiers.",
                "Add associatedStoreIdentifiers with your app's App Store ID, or remove "
                "appLaunchURL.",
            )

    def _check_format_version(self, value: object, path: str, data: dict[str, Any]) -> None:
        if not (_is_number(value) and value == 1):
            self.report.error(
                path,
                f"formatVersion must be the number 1, not {_describe(value)}.",
                'Write "formatVersion": 1 (a number, without quotes).',
            )

    def _check_store_identifiers(self, value: object, path: str, data: dict[str, Any]) -> None:
        if _expect(self.report, value, "array", path):
            for index, item in enumerate(value):  # type: ignore[arg-type]
                _expect(self.report, item, "integer", f"{path}[{index}]")

    def _check_user_info(self, value: object, path: str, data: dict[str, Any]) -> None:
        _expect(self.report, value, "object", path)

    def _check_max_distance(self, value: object, path: str, data: dict[str, Any]) -> None:
        if _expect(self.report, value, "number", path) and value < 0:  # type: ignore[operator]
            self.report.error(
                path, "maxDistance is negative.", "Give a distance in metres, 0 or more."
            )

    def _check_style_schemes(self, value: object, path: str, data: dict[str, Any]) -> None:
        if not _expect(self.report, value, "array", path):
            return
        for index, item in enumerate(value):  # type: ignore[arg-type]
            item_path = f"{path}[{index}]"
            if _expect(self.report, item, "string", item_path) and item not in STYLE_SCHEMES:
                # Apple adds schemes with new releases; an unknown one falls back, not fails.
                self.report.warn(
                    item_path,
                    f"{json.dumps(item)} is not a style scheme this validator knows.",
                    f"Check the spelling against Apple's docs; known: {', '.join(STYLE_SCHEMES)}.",
                )

    def _check_upcoming(self, value: object, path: str, data: dict[str, Any]) -> None:
        """UpcomingPassInformationEntry (iOS 26): the events of a multi-event ticket."""
        report = self.report
        if not _expect(report, value, "array", path):
            return
        assert isinstance(value, list)
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            if not _expect(report, item, "object", item_path):
                continue
            _sub_keys(report, item, item_path, UPCOMING_ENTRY_KEYS, ("identifier", "name", "type"))
            # Each entry's details view is a layout of its own.
            self.field_keys = {}
            for group in ("additionalInfoFields", "backFields"):
                fields = item.get(group)
                if isinstance(fields, list):
                    group_path = _child(item_path, group)
                    for position, entry_field in enumerate(fields):
                        self._field("upcoming", group, entry_field, f"{group_path}[{position}]")
        _unique(report, value, "identifier", path, "upcoming entry")

    def _check_relevant_dates(self, value: object, path: str, data: dict[str, Any]) -> None:
        report = self.report
        if not _expect(report, value, "array", path):
            return
        for index, item in enumerate(value):  # type: ignore[arg-type]
            item_path = f"{path}[{index}]"
            if not _expect(report, item, "object", item_path):
                continue
            # Apple's entry names its single date `date`; iOS 18 passes used `relevantDate`.
            single = [k for k in ("date", "relevantDate") if k in item]
            interval = [k for k in ("startDate", "endDate") if k in item]
            parsed = {
                k: _check_date(report, item[k], _child(item_path, k)) for k in single + interval
            }
            for key in item:
                if key not in ("date", "relevantDate", "startDate", "endDate"):
                    _unknown_key(report, _child(item_path, key), ("date", "startDate", "endDate"))
            if single and interval:
                report.error(
                    item_path,
                    "A relevant date has both a single date and a start/end interval.",
                    "Use either date or startDate with endDate in one entry.",
                )
            elif len(interval) == 1:
                report.error(
                    item_path,
                    f"A relevant date interval has {interval[0]} without its other end.",
                    "Give both startDate and endDate, or use date alone.",
                )
            elif not single and not interval:
                report.error(
                    item_path,
                    "A relevant date entry has no date.",
                    "Add date, or startDate and endDate.",
                )
            start, end = parsed.get("startDate"), parsed.get("endDate")
            if start and end and end < start:
                report.error(
                    _child(item_path, "endDate"),
                    "The relevant interval ends before it starts.",
                    "Swap startDate and endDate, or correct one of them.",
                )

    def _check_locations(self, value: object, path: str, data: dict[str, Any]) -> None:
        report = self.report
        if not _expect(report, value, "array", path):
            return
        assert isinstance(value, list)
        if len(value) > 10:
            report.error(
                path,
                f"The pass has {len(value)} locations; Wallet allows up to ten.",
                "Keep the ten most useful locations (or use beacons for more places).",
            )
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            if not _expect(report, item, "object", item_path):
                continue
            _check_coordinates(report, item, item_path)
            for key, sub in item.items():
                sub_path = _child(item_path, key)
                if key == "altitude":
                    _expect(report, sub, "number", sub_path)
                elif key == "relevantText":
                    _expect(report, sub, "string", sub_path)
                elif key not in ("latitude", "longitude"):
                    _unknown_key(
                        report, sub_path, ("latitude", "longitude", "altitude", "relevantText")
                    )

    def _check_beacons(self, value: object, path: str, data: dict[str, Any]) -> None:
        report = self.report
        if not _expect(report, value, "array", path):
            return
        assert isinstance(value, list)
        uuids = set()
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            if not _expect(report, item, "object", item_path):
                continue
            if "proximityUUID" not in item:
                report.error(
                    item_path,
                    "A beacon has no proximityUUID.",
                    "Add the beacon's UUID, like F8F589E9-C07E-58B0-AEAB-A36BE4D48FAC.",
                )
            for key, sub in item.items():
                sub_path = _child(item_path, key)
                if key == "proximityUUID":
                    if _expect(report, sub, "string", sub_path):
                        try:
                            uuids.add(uuid.UUID(sub))
                        except ValueError:
                            report.error(
                                sub_path,
                                f"{json.dumps(sub)} is not a UUID.",
                                "Write the beacon UUID as 8-4-4-4-12 hex digits.",
                            )
                elif key in ("major", "minor"):
                    if _expect(report, sub, "integer", sub_path) and not 0 <= sub <= 0xFFFF:
                        report.error(
                            sub_path,
                            f"The beacon {key} value {sub} does not fit in 16 bits.",
                            f"Use a {key} value from 0 to 65535.",
                        )
                elif key in ("relevantText", "name"):
                    # `name` appears in Apple's own beacon example, though not in the key list.
                    _expect(report, sub, "string", sub_path)
                else:
                    _unknown_key(
                        report, sub_path, ("proximityUUID", "major", "minor", "relevantText")
                    )
            if "minor" in item and "major" not in item:
                # Core Location cannot match a minor value without its major value.
                report.warn(
                    _child(item_path, "minor"),
                    "A beacon has minor without major; the minor value cannot be used alone.",
                    "Add major, or remove minor.",
                )
        if len(uuids) > 10:
            report.error(
                path,
                f"The pass has {len(uuids)} different beacon UUIDs; Wallet allows up to ten.",
                "Share UUIDs between beacons and tell them apart with major and minor.",
            )

    def _check_barcode(self, value: object, path: str, data: dict[str, Any]) -> None:
        self._barcode(value, path, LEGACY_BARCODE_FORMATS)
        if "barcodes" not in data:
            self.report.warn(
                path,
                "barcode is deprecated since iOS 9.",
                "Put the same dictionary in a barcodes list too (keep barcode for iOS 8 and "
                "older).",
            )

    def _check_barcodes(self, value: object, path: str, data: dict[str, Any]) -> None:
        report = self.report
        if not _expect(report, value, "array", path):
            return
        assert isinstance(value, list)
        if not value:
            report.warn(path, "barcodes is an empty list.", "Add a barcode or remove the key.")
        formats = [
            self._barcode(item, f"{path}[{i}]", BARCODE_FORMATS) for i, item in enumerate(value)
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

    def _barcode(self, item: object, path: str, allowed: tuple[str, ...]) -> str | None:
        report = self.report
        if not _expect(report, item, "object", path):
            return None
        assert isinstance(item, dict)
        for key in ("format", "message", "messageEncoding"):
            if key not in item:
                report.error(
                    _child(path, key),
                    f"The barcode has no {key}, which Wallet requires.",
                    'Add it; for example "messageEncoding": "iso-8859-1".'
                    if key == "messageEncoding"
                    else f"Add the barcode's {key}.",
                )
        fmt = item.get("format")
        if "format" in item and fmt in BARCODE_FORMATS and fmt not in allowed:
            report.error(
                _child(path, "format"),
                f"The deprecated barcode dictionary cannot use {fmt}.",
                f"Use {', '.join(allowed)} here, and put {fmt} in the barcodes list only.",
            )
            fmt = None
        elif "format" in item and not _check_enum(report, fmt, allowed, _child(path, "format")):
            fmt = None
        message = item.get("message")
        if "message" in item and _expect(report, message, "string", _child(path, "message")):
            if fmt:
                self._symbology(fmt, message, _child(path, "message"))
        encoding = item.get("messageEncoding")
        if "messageEncoding" in item and _expect(
            report, encoding, "string", _child(path, "messageEncoding")
        ):
            self._message_encoding(encoding, message, path)
        for key, sub in item.items():
            if key == "altText":
                _expect(report, sub, "string", _child(path, key))
            elif key not in ("format", "message", "messageEncoding"):
                _unknown_key(
                    report, _child(path, key), ("format", "message", "messageEncoding", "altText")
                )
        return fmt if isinstance(fmt, str) else None

    def _message_encoding(self, encoding: str, message: object, path: str) -> None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            self.report.warn(
                _child(path, "messageEncoding"),
                f"{json.dumps(encoding)} is not an encoding name this server knows, so the message "
                "could not be checked against it.",
                "Use an IANA character set name such as iso-8859-1 or utf-8.",
            )
            return
        if not isinstance(message, str):
            return
        try:
            message.encode(encoding)
        except UnicodeEncodeError as exc:
            bad = message[exc.start : exc.end]
            self.report.error(
                _child(path, "message"),
                f"The barcode message has characters ({bad!r}) that {encoding} cannot encode, so "
                "Wallet cannot draw the barcode.",
                "Use utf-8 as messageEncoding, or keep the message to characters the encoding has.",
            )

    def _symbology(self, fmt: str, message: str, path: str) -> None:
        report = self.report
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

    def _check_nfc(self, value: object, path: str, data: dict[str, Any]) -> None:
        report = self.report
        if not _expect(report, value, "object", path):
            return
        assert isinstance(value, dict)
        for key in ("message", "encryptionPublicKey"):
            if key not in value:
                report.error(
                    _child(path, key),
                    f"nfc has no {key}, which Wallet requires.",
                    f"Add nfc.{key}.",
                )
        for key, sub in value.items():
            sub_path = _child(path, key)
            if key == "message":
                if _expect(report, sub, "string", sub_path) and len(sub.encode("utf-8")) > 64:
                    report.error(
                        sub_path,
                        f"The NFC message is {len(sub.encode('utf-8'))} bytes; Wallet truncates "
                        "anything past 64 bytes, so the terminal would read a different value.",
                        "Shorten the NFC message to 64 bytes or fewer (UTF-8).",
                    )
            elif key == "encryptionPublicKey":
                if _expect(report, sub, "string", sub_path):
                    _check_nfc_key(report, sub, sub_path)
            elif key == "requiresAuthentication":
                if (
                    _expect(report, sub, "boolean", sub_path)
                    and sub
                    and data.get("sharingProhibited") is not True
                ):
                    # Apple: set sharingProhibited so the pass cannot reach iOS versions that
                    # skip the authentication requirement.
                    report.warn(
                        sub_path,
                        "requiresAuthentication is on but sharing is allowed, so a shared copy on "
                        "an older iOS version could skip authentication.",
                        'Add "sharingProhibited": true.',
                    )
            else:
                _unknown_key(
                    report, sub_path, ("message", "encryptionPublicKey", "requiresAuthentication")
                )

    # styles and fields ---------------------------------------------------------------

    def _check_style(self, style: str, value: object, path: str, data: dict[str, Any]) -> None:
        report = self.report
        if not _expect(report, value, "object", path):
            return
        assert isinstance(value, dict)
        # Keys are unique within one layout: posterGeneric and its fallback style may, and in
        # Apple's example do, repeat each other's keys.
        self.field_keys = {}
        for key, sub in value.items():
            sub_path = _child(path, key)
            if key in FIELD_GROUPS:
                shown_by = _ONLY_SHOWN_BY.get(key)
                if shown_by and style not in shown_by:
                    report.warn(
                        sub_path,
                        f"Only {' and '.join(_POSTER_NAMES[s] for s in shown_by)} show {key}; a "
                        f"{style} ignores them.",
                        "Move these fields to backFields.",
                    )
                if _expect(report, sub, "array", sub_path):
                    for index, item in enumerate(sub):
                        self._field(style, key, item, f"{sub_path}[{index}]")
            elif key == "transitType":
                if style == "boardingPass":
                    _check_enum(report, sub, TRANSIT_TYPES, sub_path)
                else:
                    report.warn(
                        sub_path,
                        f"transitType is only for boarding passes; a {style} ignores it.",
                        "Remove transitType.",
                    )
            else:
                _unknown_key(report, sub_path, FIELD_GROUPS)
        if style == "boardingPass" and "transitType" not in value:
            report.error(
                _child(path, "transitType"),
                "A boarding pass needs a transitType.",
                f"Add transitType: one of {', '.join(TRANSIT_TYPES)}.",
            )
        self._check_field_counts(style, value, path, data)

    def _check_field_counts(
        self, style: str, groups: dict[str, Any], path: str, data: dict[str, Any]
    ) -> None:
        limits = {
            "boardingPass": BOARDING_FIELD_LIMITS,
            "posterGeneric": POSTER_GENERIC_FIELD_LIMITS,
        }.get(style, FIELD_LIMITS)
        lists = {k: v for k, v in groups.items() if isinstance(v, list)}
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
                    self._too_many(
                        _child(path, group), f"{max(over.values())} in one row", limit, group
                    )
            elif len(fields) > limit:
                self._too_many(_child(path, group), str(len(fields)), limit, group, style)
        if style in ("coupon", "storeCard", "generic") and self._square_barcode(data):
            combined = len(lists.get("secondaryFields", [])) + len(lists.get("auxiliaryFields", []))
            if combined > 4:
                self.report.warn(
                    path,
                    f"With a square barcode a {style} shows at most four secondary and auxiliary "
                    f"fields together; this pass has {combined}.",
                    "Move the extra fields to backFields, or use a rectangular barcode (PDF417).",
                )

    def _too_many(self, path: str, count: str, limit: int, group: str, style: str = "") -> None:
        if limit == 0:
            self.report.warn(
                path, f"A {style} does not show {group}; Wallet ignores them.", _TO_BACK_FIELDS
            )
            return
        self.report.warn(
            path,
            f"This style shows at most {limit} {group} but the pass has {count}; Wallet drops the "
            "rest.",
            "Move the extra fields to backFields.",
        )

    @staticmethod
    def _square_barcode(data: dict[str, Any]) -> bool:
        candidates = data.get("barcodes") if isinstance(data.get("barcodes"), list) else None
        first = (candidates or [data.get("barcode")])[0]
        return isinstance(first, dict) and first.get("format") in SQUARE_BARCODES

    def _field(self, style: str, group: str, item: object, path: str) -> None:
        report = self.report
        if not _expect(report, item, "object", path):
            return
        assert isinstance(item, dict)
        self._field_key(item, path)
        self._field_value(item, path)
        for key, sub in item.items():
            sub_path = _child(path, key)
            if key in ("key", "value", "dateStyle", "timeStyle", "numberStyle", "currencyCode"):
                continue  # checked together above
            if key == "label":
                _expect(report, sub, "string", sub_path)
            elif key == "attributedValue":
                self._attributed_value(sub, sub_path)
            elif key == "changeMessage":
                if _expect(report, sub, "string", sub_path):
                    self._change_message(sub, sub_path)
            elif key == "dataDetectorTypes":
                self._data_detectors(group, sub, sub_path)
            elif key == "textAlignment":
                if _check_enum(report, sub, TEXT_ALIGNMENTS, sub_path) and group in (
                    "primaryFields",
                    "backFields",
                ):
                    report.warn(
                        sub_path,
                        f"Wallet does not align {group}; textAlignment is ignored here.",
                        "Remove textAlignment from this field.",
                    )
            elif key in ("ignoresTimeZone", "isRelative"):
                _expect(report, sub, "boolean", sub_path)
            elif key == "semantics":
                _check_semantics(report, sub, sub_path)
            elif key == "row" and group == "auxiliaryFields":
                if _expect(report, sub, "integer", sub_path) and sub not in (0, 1):
                    report.error(sub_path, f"row must be 0 or 1, not {sub}.", "Use row 0 or row 1.")
            elif key == PASS_DESIGNER_ID:
                _expect(report, sub, "string", sub_path)
            else:
                _unknown_key(report, sub_path, FIELD_KEYS)

    def _field_key(self, item: dict[str, Any], path: str) -> None:
        report = self.report
        key_path = _child(path, "key")
        if "key" not in item:
            report.error(
                key_path, "The field has no key.", "Give the field a key unique in the pass."
            )
            return
        key = item["key"]
        if not _expect(report, key, "string", key_path):
            return
        if not key:
            report.error(
                key_path, "The field key is empty.", "Give the field a key unique in the pass."
            )
        elif key in self.field_keys:
            report.error(
                key_path,
                f"The field key {json.dumps(key)} is already used at {self.field_keys[key]}; keys "
                "must be unique across the whole pass.",
                "Rename one of the fields.",
            )
        else:
            self.field_keys[key] = key_path

    def _field_value(self, item: dict[str, Any], path: str) -> None:
        report = self.report
        value_path = _child(path, "value")
        for key, allowed in (
            ("dateStyle", DATE_STYLES),
            ("timeStyle", DATE_STYLES),
            ("numberStyle", NUMBER_STYLES),
        ):
            if key in item:
                _check_enum(report, item[key], allowed, _child(path, key))
        if "currencyCode" in item:
            code = item["currencyCode"]
            code_path = _child(path, "currencyCode")
            if _expect(report, code, "string", code_path) and not _CURRENCY.fullmatch(code):
                report.error(
                    code_path,
                    f"{json.dumps(code)} is not an ISO 4217 currency code.",
                    "Use three capital letters, like EUR or USD.",
                )
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
        if "value" not in item:
            report.error(
                value_path,
                "The field has no value.",
                'Add a value (a string, a number or a date); use "" for an empty field.',
            )
            return
        value = item["value"]
        if not (isinstance(value, str) or _is_number(value)):
            report.error(
                value_path,
                f"A field value must be a string, a number or a date, not {_describe(value)}.",
                "Write the value as text or as a number.",
            )
            return
        if is_date and not is_number:
            _check_date(report, value, value_path)
        elif is_number and not is_date and not _is_number(value):
            which = "currencyCode" if "currencyCode" in item else "numberStyle"
            report.error(
                value_path,
                f"With {which} the value must be a number, not {_describe(value)}.",
                "Write the value as a JSON number without quotes, like 21.75.",
            )

    def _attributed_value(self, value: object, path: str) -> None:
        if not (isinstance(value, str) or _is_number(value)):
            self.report.error(
                path,
                f"attributedValue must be a string or a number, not {_describe(value)}.",
                "Write the attributed value as text (links as <a href='...'>...</a>).",
            )
            return
        if isinstance(value, str):
            tags = {tag.lower() for tag in _HTML_TAG.findall(value)} - {"a"}
            if tags:
                self.report.warn(
                    path,
                    f"attributedValue uses <{'>, <'.join(sorted(tags))}>; Wallet supports only "
                    "<a href> links and shows other tags as text.",
                    "Keep only <a href='...'> links in attributedValue.",
                )

    def _change_message(self, text: str, path: str) -> None:
        # The message is a localizable format string: check each translation when it is a key.
        translated = [
            (lang, table[text]) for lang, table in self.localizations.items() if text in table
        ]
        if not translated:
            if not _CHANGE_PLACEHOLDER.search(text):
                self.report.error(
                    path,
                    f"The change message {json.dumps(text)} has no %@, so the update notification "
                    "cannot show the new value.",
                    _WHERE_NEW_VALUE_GOES,
                )
            return
        for lang, message in sorted(translated):
            if not _CHANGE_PLACEHOLDER.search(message):
                self.report.error(
                    path,
                    f"The {lang} translation of the change message ({json.dumps(message)}, in "
                    f"{lang}.lproj/pass.strings) has no %@.",
                    _WHERE_NEW_VALUE_GOES,
                )

    def _data_detectors(self, group: str, value: object, path: str) -> None:
        if not _expect(self.report, value, "array", path):
            return
        for index, item in enumerate(value):  # type: ignore[arg-type]
            _check_enum(self.report, item, DATA_DETECTORS, f"{path}[{index}]")
        if group != "backFields":
            self.report.warn(
                path,
                "Wallet runs data detectors on back fields only; here they are ignored.",
                "Remove dataDetectorTypes from this field, or move the field to backFields.",
            )

    # whole-pass rules ----------------------------------------------------------------

    def _check_web_service(self, data: dict[str, Any]) -> None:
        report = self.report
        url, token = data.get("webServiceURL"), data.get("authenticationToken")
        url_path, token_path = "$.webServiceURL", "$.authenticationToken"
        if "webServiceURL" in data and _expect(report, url, "string", url_path):
            _check_web_service_url(report, url, url_path)
        if "authenticationToken" in data and _expect(report, token, "string", token_path):
            assert isinstance(token, str)
            if len(token) < 16:
                report.error(
                    token_path,
                    f"The authentication token has {len(token)} characters; Apple requires at "
                    "least 16.",
                    "Use a random token of 16 or more characters (32 hex digits is typical).",
                )
            if not all(0x21 <= ord(c) <= 0x7E for c in token):
                report.error(
                    token_path,
                    "The authentication token has spaces, control or non-ASCII characters; it "
                    "travels in an HTTP header.",
                    "Use letters, digits and punctuation only.",
                )
        if "webServiceURL" in data and "authenticationToken" not in data:
            report.error(
                token_path,
                "The pass has a webServiceURL but no authenticationToken, so devices cannot "
                "register for updates.",
                "Add an authenticationToken of at least 16 characters.",
            )
        elif "authenticationToken" in data and "webServiceURL" not in data:
            report.warn(
                token_path,
                "The pass has an authenticationToken but no webServiceURL; the token is unused.",
                "Add the webServiceURL, or remove the token.",
            )

    def _check_relevance(self, data: dict[str, Any]) -> None:
        # Table 4-2, "Pass style and relevance information".
        style = self.style
        if style in ("coupon", "storeCard") and "relevantDate" in data:
            self.report.warn(
                "$.relevantDate",
                f"A {style} does not support a relevant date; Wallet ignores it.",
                "Remove relevantDate; use locations to make the pass relevant.",
            )
        other = "relevantDate" in data or "beacons" in data
        if style in ("coupon", "storeCard", "generic") and other and "locations" not in data:
            self.report.warn(
                "$",
                f"A {style} with relevance information must also list locations.",
                "Add locations (where the pass is useful) or remove the other relevance keys.",
            )


_TOP_LEVEL_CHECKS: dict[str, Callable[[_PassChecker, object, str, dict[str, Any]], None]] = {
    "formatVersion": _PassChecker._check_format_version,
    "associatedStoreIdentifiers": _PassChecker._check_store_identifiers,
    "auxiliaryStoreIdentifiers": _PassChecker._check_store_identifiers,
    "userInfo": _PassChecker._check_user_info,
    "maxDistance": _PassChecker._check_max_distance,
    "preferredStyleSchemes": _PassChecker._check_style_schemes,
    "upcomingPassInformation": _PassChecker._check_upcoming,
    "relevantDates": _PassChecker._check_relevant_dates,
    "locations": _PassChecker._check_locations,
    "beacons": _PassChecker._check_beacons,
    "barcode": _PassChecker._check_barcode,
    "barcodes": _PassChecker._check_barcodes,
    "nfc": _PassChecker._check_nfc,
    "semantics": lambda checker, value, path, data: _check_semantics(checker.report, value, path),
    "featuredActions": lambda checker, value, path, data: _check_featured_actions(
        checker.report, value, path
    ),
    # Checked together in _check_web_service.
    "webServiceURL": lambda checker, value, path, data: None,
    "authenticationToken": lambda checker, value, path, data: None,
}


# Every top-level key this validator knows, to suggest one for a misspelt key.
TOP_LEVEL_KEYS = (
    frozenset(STYLES) | STRING_KEYS | BOOLEAN_KEYS | COLOR_KEYS | DATE_KEYS | set(_TOP_LEVEL_CHECKS)
)


def _ean_check_digit(digits: str) -> str:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return str(-total % 10)


def _check_coordinates(report: Report, item: dict[str, Any], path: str) -> None:
    for key, limit in (("latitude", 90), ("longitude", 180)):
        sub_path = _child(path, key)
        if key not in item:
            report.error(sub_path, f"The location has no {key}.", f"Add the {key} in degrees.")
        elif _expect(report, item[key], "number", sub_path) and not -limit <= item[key] <= limit:
            report.error(
                sub_path,
                f"{key} {item[key]} is outside -{limit} to {limit} degrees.",
                "Use decimal degrees (WGS 84); check that latitude and longitude are not swapped.",
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


# --- values by kind: semantic tags (SemanticTagType), featured actions, upcoming events ------


def _check_value(report: Report, value: object, kind: str, path: str) -> None:
    """Check a value against a kind: a JSON type of _KINDS or a check of _VALUE_CHECKS."""
    if kind in _KINDS:
        _expect(report, value, kind, path)
    else:
        _VALUE_CHECKS[kind](report, value, path)


def _check_semantics(report: Report, value: object, path: str) -> None:
    if not _expect(report, value, "object", path):
        return
    assert isinstance(value, dict)
    for key, sub in value.items():
        sub_path = _child(path, key)
        kind = SEMANTIC_TAGS.get(key)
        if kind is not None:
            _check_value(report, sub, kind, sub_path)
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


def _of_kind(kind: str) -> Callable[[Report, object, str], None]:
    def check(report: Report, value: object, path: str) -> None:
        _check_value(report, value, kind, path)

    return check


def _one_of(allowed: tuple[str, ...]) -> Callable[[Report, object, str], None]:
    """An enumeration Wallet refuses other values of."""

    def check(report: Report, value: object, path: str) -> None:
        _check_enum(report, value, allowed, path)

    return check


def _listed(allowed: tuple[str, ...]) -> Callable[[Report, object, str], None]:
    """A value from a list Apple grows with new releases: another one is a warning."""

    def check(report: Report, value: object, path: str) -> None:
        if _expect(report, value, "string", path) and value not in allowed:
            report.warn(
                path,
                f"{json.dumps(value)} is not one of the values Apple lists here; Wallet "
                "ignores it.",
                f"Check the spelling (case-sensitive); Apple lists: {', '.join(allowed)}.",
            )

    return check


def _check_time_zone(report: Report, value: object, path: str) -> None:
    if not _expect(report, value, "string", path):
        return
    assert isinstance(value, str)
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


def _check_date_value(report: Report, value: object, path: str) -> None:
    _check_date(report, value, path)


def _check_featured_actions(report: Report, value: object, path: str) -> None:
    _list_of(_of_kind("featuredAction"))(report, value, path)
    if not isinstance(value, list):
        return
    if len(value) > MAX_FEATURED_ACTIONS:
        report.warn(
            path,
            f"The pass has {len(value)} featured actions; Wallet shows at most "
            f"{MAX_FEATURED_ACTIONS}.",
            f"Keep the {MAX_FEATURED_ACTIONS} most useful ones.",
        )
    _unique(report, value, "identifier", path, "featured action")


def _unique(report: Report, items: list[Any], key: str, path: str, what: str) -> None:
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


def _sub_keys(
    report: Report,
    item: dict[str, Any],
    path: str,
    kinds: Mapping[str, str],
    required: tuple[str, ...] = (),
) -> None:
    """Type-check a small dictionary: known keys by kind, missing required keys, unknown keys."""
    for key in required:
        if key not in item:
            report.error(_child(path, key), f"{_leaf(path)} has no {key}.", f"Add {key}.")
    for key, value in item.items():
        sub_path = _child(path, key)
        kind = kinds.get(key)
        if kind is None:
            _unknown_key(report, sub_path, frozenset(kinds) - {PASS_DESIGNER_ID})
        else:
            _check_value(report, value, kind, sub_path)


def _currency_amount(report: Report, value: object, path: str) -> None:
    if not _expect(report, value, "object", path):
        return
    assert isinstance(value, dict)
    if _is_number(value.get("amount")):
        report.error(
            _child(path, "amount"),
            "A semantic currency amount must be a string, not a number.",
            f'Write the amount in quotes, like "{value["amount"]}".',
        )
        value = {k: v for k, v in value.items() if k != "amount"} | {"amount": ""}
    _sub_keys(report, value, path, {"amount": "string", "currencyCode": "string"}, ("amount",))
    amount, code = value.get("amount"), value.get("currencyCode")
    if isinstance(amount, str) and amount and not _DECIMAL.fullmatch(amount):
        report.warn(
            _child(path, "amount"),
            f"{json.dumps(amount)} is not a plain decimal amount.",
            'Write digits with a dot for decimals, like "12.50".',
        )
    if "currencyCode" not in value:
        report.warn(path, "The amount has no currencyCode.", "Add currencyCode, like EUR.")
    elif isinstance(code, str) and not _CURRENCY.fullmatch(code):
        report.error(
            _child(path, "currencyCode"),
            f"{json.dumps(code)} is not an ISO 4217 currency code.",
            "Use three capital letters, like EUR or USD.",
        )


def _semantic_location(report: Report, value: object, path: str) -> None:
    if _expect(report, value, "object", path):
        assert isinstance(value, dict)
        _check_coordinates(report, value, path)
        for key in value:
            if key not in ("latitude", "longitude"):
                _unknown_key(report, _child(path, key), ("latitude", "longitude"))


def _person_name(report: Report, value: object, path: str) -> None:
    if not _expect(report, value, "object", path):
        return
    assert isinstance(value, dict)
    kinds = dict.fromkeys(PERSON_NAME_KEYS, "string")
    phonetic = value.get("phoneticRepresentation")
    rest = {k: v for k, v in value.items() if k != "phoneticRepresentation"}
    _sub_keys(report, rest, path, kinds)
    # Modelled on PersonNameComponents, whose phonetic form is itself a name; accept a plain
    # string too, as some generators write one.
    if isinstance(phonetic, dict):
        _person_name(report, phonetic, _child(path, "phoneticRepresentation"))
    elif "phoneticRepresentation" in value:
        _expect(report, phonetic, "string", _child(path, "phoneticRepresentation"))


def _list_of(
    check: Callable[[Report, object, str], None],
) -> Callable[[Report, object, str], None]:
    def check_list(report: Report, value: object, path: str) -> None:
        if _expect(report, value, "array", path):
            for index, item in enumerate(value):  # type: ignore[arg-type]
                check(report, item, f"{path}[{index}]")

    return check_list


def _shape(
    kinds: Mapping[str, str], required: tuple[str, ...] = ()
) -> Callable[[Report, object, str], None]:
    def check(report: Report, value: object, path: str) -> None:
        if _expect(report, value, "object", path):
            _sub_keys(report, value, path, kinds, required)  # type: ignore[arg-type]

    return check


_VALUE_CHECKS: dict[str, Callable[[Report, object, str], None]] = {
    "date": _check_date_value,
    "color": _check_color,
    "timeZone": _check_time_zone,
    "strings": _list_of(_of_kind("string")),
    "integers": _list_of(_of_kind("integer")),
    "eventType": _one_of(EVENT_TYPES),
    "passengerCapabilities": _list_of(_listed(PASSENGER_CAPABILITIES)),
    "securityPrograms": _list_of(_listed(SECURITY_PROGRAMS)),
    "semantics": _check_semantics,
    "currency": _currency_amount,
    "location": _semantic_location,
    "person": _person_name,
    "seats": _list_of(
        _shape(
            {
                **dict.fromkeys(SEAT_KEYS, "string"),
                "seatSectionColor": "color",
                PASS_DESIGNER_ID: "string",
            }
        )
    ),
    "wifi": _list_of(_shape({"ssid": "string", "password": "string"}, ("ssid", "password"))),
    "eventDateInfo": _shape(
        {
            "date": "date",
            "timeZone": "string",
            "ignoreTimeComponents": "boolean",
            "unannounced": "boolean",
            "undetermined": "boolean",
        },
        ("date",),
    ),
    # The tag is airPlay (what Wallet's semantics reader accepts); its key is spelled both ways
    # in the wild and no Apple page settles it.
    "airplay": _list_of(
        _shape({"airplayDeviceGroupToken": "string", "airPlayDeviceGroupToken": "string"})
    ),
    # apple/pass-builder's Pass.Action; the types from "Defining the metadata of your Wallet
    # Pass".
    "featuredActions": _check_featured_actions,
    "featuredAction": _shape(
        {
            "identifier": "string",
            "type": "featuredActionType",
            "url": "string",
            PASS_DESIGNER_ID: "string",
        },
        ("identifier", "type"),
    ),
    "featuredActionType": _listed(FEATURED_ACTION_TYPES),
    # UpcomingPassInformationEntry (iOS 26) and its dictionaries; the fields lists are checked
    # as fields by _PassChecker._check_upcoming.
    "upcomingEntryType": _one_of(("event",)),
    "eventGuideURLs": _shape(dict.fromkeys(EVENT_GUIDE_KEYS, "string")),
    "dateInformation": _shape(
        {
            "date": "date",
            "ignoreTimeComponents": "boolean",
            "isAllDay": "boolean",
            "isUnannounced": "boolean",
            "isUndetermined": "boolean",
            "timeZone": "timeZone",
        }
    ),
    "upcomingImages": _shape({"headerImage": "remoteImage", "venueMap": "remoteImage"}),
    "remoteImage": _shape({"URLs": "imageURLs", "reuseExisting": "boolean"}),
    "imageURLs": _list_of(
        _shape(
            {"SHA256": "string", "URL": "string", "scale": "number", "size": "integer"},
            ("SHA256", "URL"),
        )
    ),
}
UPCOMING_ENTRY_KEYS = {
    "identifier": "string",
    "name": "string",
    "type": "upcomingEntryType",
    "URLs": "eventGuideURLs",
    "additionalInfoFields": "array",
    "backFields": "array",
    "auxiliaryStoreIdentifiers": "integers",
    "dateInformation": "dateInformation",
    "images": "upcomingImages",
    "isActive": "boolean",
    "semantics": "semantics",
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
    data = _load_json(files[name], name, report)
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
