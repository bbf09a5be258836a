"""What pass.json may hold: every key Wallet reads, the kind of its value, the values it allows
and how dictionaries nest, as data.

Sources: Apple's "Wallet Passes" reference (Pass, PassFields, PassFieldContent, SemanticTags,
...), the archived Wallet Developer Guide, and apple/pass-builder's Protobufs/Pass.proto for the
iOS 18-27 keys. `validation` walks a pass.json along `PASS` and reports what does not fit; what a
table cannot say (field counts, barcode fallbacks, change messages, the web service) are rules
there, named in the tables below by the `rules` of a Shape or a ListOf, and value checks named by
a string kind ("date", "color", ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# --- how the description is written ------------------------------------------------------


@dataclass(frozen=True)
class Missing:
    """What to say when a required key is absent: templates with {name} (the dictionary, as
    the last step of its path) and {key}; `on_object` puts the problem on the dictionary."""

    message: str = "{name} has no {key}."
    fix: str = "Add {key}."
    on_object: bool = False


def needs(
    keys: tuple[str, ...], message: str = Missing.message, fix: str = Missing.fix
) -> dict[str, Missing]:
    """The same Missing for each of `keys`."""
    return dict.fromkeys(keys, Missing(message, fix))


@dataclass(frozen=True)
class Shape:
    """A JSON object: the kind of each key it may hold, the keys it must hold, and the rules
    (by name, see validation) that look at the object as a whole after its keys are checked.
    A key not in `keys` is warned about; `quiet` keys are accepted but never suggested."""

    keys: Mapping[str, Kind]
    required: Mapping[str, Missing] = field(default_factory=dict)
    rules: tuple[str, ...] = ()
    quiet: Mapping[str, Kind] = field(default_factory=dict)


@dataclass(frozen=True)
class ListOf:
    """A JSON list of one kind; `unique` names a key no two items may share (and what the
    items are called in the message); `rules` look at the list as a whole."""

    item: Kind
    unique: tuple[str, str] | None = None
    rules: tuple[str, ...] = ()


@dataclass(frozen=True)
class OneOf:
    """A string from a closed list: Wallet refuses any other value."""

    values: tuple[str, ...]


@dataclass(frozen=True)
class Listed:
    """A string from a list Apple grows with new releases: another value is only a warning."""

    values: tuple[str, ...]


@dataclass(frozen=True)
class Unused:
    """A key this layout does not show: a warning, then (unless `kind` is None) the value is
    still checked, so that it is right when the pass moves to a layout that shows it."""

    kind: Kind | None
    message: str
    fix: str


# A JSON type ("string", "boolean", "number", "integer", "object", "array") or a value check
# of validation ("date", "color", ...) by name, or one of the classes above.
Kind = str | Shape | ListOf | OneOf | Listed | Unused


# --- keys and values -----------------------------------------------------------------------

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

# The dictionaries of semantic tags.
CURRENCY_AMOUNT = Shape(
    {"amount": "amount", "currencyCode": "currencyCode"},
    needs(("amount",)),
    rules=("amount has a currency",),
)
COORDINATES = needs(
    ("latitude", "longitude"), "The location has no {key}.", "Add the {key} in degrees."
)
SEMANTIC_LOCATION = Shape({"latitude": "latitude", "longitude": "longitude"}, COORDINATES)
# Modelled on PersonNameComponents, whose phonetic form is itself a name ("phoneticName"
# accepts a plain string too, as some generators write one).
PERSON_NAME = Shape(
    {**dict.fromkeys(PERSON_NAME_KEYS, "string"), "phoneticRepresentation": "phoneticName"}
)
SEAT = Shape(
    {**dict.fromkeys(SEAT_KEYS, "string"), "seatSectionColor": "color"},
    quiet={PASS_DESIGNER_ID: "string"},
)
WIFI_NETWORK = Shape({"ssid": "string", "password": "string"}, needs(("ssid", "password")))
EVENT_DATE_INFO = Shape(
    {
        "date": "date",
        "timeZone": "string",
        "ignoreTimeComponents": "boolean",
        "unannounced": "boolean",
        "undetermined": "boolean",
    },
    needs(("date",)),
)
# SemanticTags with the iOS 18 and iOS 26 additions, by the kind of their value. Wallet refuses
# a pass whose semantic value has the wrong type, and ignores a tag it does not know.
SEMANTIC_TAGS: dict[str, Kind] = {
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
        ListOf("string"),
    ),
    **dict.fromkeys(
        (
            "departureLocationSecurityPrograms",
            "destinationLocationSecurityPrograms",
            "passengerEligibleSecurityPrograms",
        ),
        ListOf(Listed(SECURITY_PROGRAMS)),
    ),
    "passengerCapabilities": ListOf(Listed(PASSENGER_CAPABILITIES)),
    "internationalDocumentsAreVerified": "boolean",
    **dict.fromkeys(("balance", "totalPrice"), CURRENCY_AMOUNT),
    **dict.fromkeys(
        ("departureLocation", "destinationLocation", "venueLocation"), SEMANTIC_LOCATION
    ),
    "duration": "number",
    "flightNumber": "number",
    "silenceRequested": "boolean",
    "tailgatingAllowed": "boolean",
    "passengerName": PERSON_NAME,
    "seats": ListOf(SEAT),
    "wifiAccess": ListOf(WIFI_NETWORK),
    "eventStartDateInfo": EVENT_DATE_INFO,
    # The tag is airPlay (what Wallet's semantics reader accepts); its key is spelled both ways
    # in the wild and no Apple page settles it.
    "airPlay": ListOf(
        Shape({"airplayDeviceGroupToken": "string", "airPlayDeviceGroupToken": "string"})
    ),
    "eventType": OneOf(EVENT_TYPES),
}
# Spellings seen in generators (some from pass-builder's model) that Wallet's own semantics
# reader does not know, with the tag it does read.
SEMANTIC_MISSPELLINGS = {
    "airlineLoungePlaceID": "loungePlaceIDs (a list)",
    "airplay": "airPlay",
    "departureAirportSecurityPrograms": "departureLocationSecurityPrograms",
    "destinationAirportSecurityPrograms": "destinationLocationSecurityPrograms",
}


# --- fields and the layouts that hold them -------------------------------------------------


def _field(group: str) -> Shape:
    """PassFieldContent, as the fields of `group` may hold it."""
    keys: dict[str, Kind] = {
        "key": "fieldKey",
        "value": "fieldValue",
        "label": "string",
        "attributedValue": "attributedValue",
        "changeMessage": "changeMessage",
        "dataDetectorTypes": ListOf(OneOf(DATA_DETECTORS)),
        "textAlignment": OneOf(TEXT_ALIGNMENTS),
        "dateStyle": OneOf(DATE_STYLES),
        "timeStyle": OneOf(DATE_STYLES),
        "ignoresTimeZone": "boolean",
        "isRelative": "boolean",
        "numberStyle": OneOf(NUMBER_STYLES),
        "currencyCode": "currencyCode",
        "semantics": "semantics",
    }
    if group == "auxiliaryFields":
        keys["row"] = "row"  # event tickets split auxiliary fields into two rows
    rules = ["field formats"]
    if group != "backFields":
        rules.append("data detectors on back fields only")
    if group in ("primaryFields", "backFields"):
        rules.append("no alignment")
    return Shape(
        keys,
        {
            "key": Missing("The field has no key.", "Give the field a key unique in the pass."),
            "value": Missing(
                "The field has no value.",
                'Add a value (a string, a number or a date); use "" for an empty field.',
            ),
        },
        tuple(rules),
        quiet={PASS_DESIGNER_ID: "string"},
    )


FIELDS = {group: _field(group) for group in FIELD_GROUPS}


def _layout(style: str) -> Shape:
    """PassFields: the dictionary under a style key (storeCard, posterGeneric, ...)."""
    keys: dict[str, Kind] = {}
    for group in FIELD_GROUPS:
        fields = ListOf(FIELDS[group])
        shown_by = _ONLY_SHOWN_BY.get(group)
        if shown_by and style not in shown_by:
            keys[group] = Unused(
                fields,
                f"Only {' and '.join(_POSTER_NAMES[s] for s in shown_by)} show {group}; a "
                f"{style} ignores them.",
                "Move these fields to backFields.",
            )
        else:
            keys[group] = fields
    if style == "boardingPass":
        keys["transitType"] = OneOf(TRANSIT_TYPES)
        required = {
            "transitType": Missing(
                "A boarding pass needs a transitType.",
                f"Add transitType: one of {', '.join(TRANSIT_TYPES)}.",
            )
        }
    else:
        keys["transitType"] = Unused(
            None,
            f"transitType is only for boarding passes; a {style} ignores it.",
            "Remove transitType.",
        )
        required = {}
    # Field keys are unique within one layout: posterGeneric and its fallback style may, and in
    # Apple's example do, repeat each other's keys.
    return Shape(keys, required, ("field counts", "unique field keys"))


LAYOUTS = {style: _layout(style) for style in STYLES}


# --- the other dictionaries of pass.json ---------------------------------------------------

_BARCODE_KEYS = ("format", "message", "messageEncoding")
_BARCODE_MISSING = {
    **needs(
        _BARCODE_KEYS,
        "The barcode has no {key}, which Wallet requires.",
        "Add the barcode's {key}.",
    ),
    "messageEncoding": Missing(
        "The barcode has no messageEncoding, which Wallet requires.",
        'Add it; for example "messageEncoding": "iso-8859-1".',
    ),
}
BARCODE = Shape(
    {
        "format": OneOf(BARCODE_FORMATS),
        "message": "string",
        "messageEncoding": "messageEncoding",
        "altText": "string",
    },
    _BARCODE_MISSING,
    ("barcode message",),
)
# The deprecated `barcode` dictionary, for iOS 8 and older.
LEGACY_BARCODE = Shape(
    {**BARCODE.keys, "format": "legacyBarcodeFormat"}, _BARCODE_MISSING, ("legacy barcode message",)
)
NFC = Shape(
    {"message": "nfcMessage", "encryptionPublicKey": "nfcKey", "requiresAuthentication": "boolean"},
    needs(
        ("message", "encryptionPublicKey"),
        "nfc has no {key}, which Wallet requires.",
        "Add nfc.{key}.",
    ),
    ("authentication needs sharingProhibited",),
)
LOCATION = Shape(
    {
        "latitude": "latitude",
        "longitude": "longitude",
        "altitude": "number",
        "relevantText": "string",
    },
    COORDINATES,
)
BEACON = Shape(
    {"proximityUUID": "uuid", "major": "uint16", "minor": "uint16", "relevantText": "string"},
    {
        "proximityUUID": Missing(
            "A beacon has no proximityUUID.",
            "Add the beacon's UUID, like F8F589E9-C07E-58B0-AEAB-A36BE4D48FAC.",
            on_object=True,
        )
    },
    ("minor needs major",),
    # In Apple's own beacon example, though not in the key list.
    quiet={"name": "string"},
)
# Apple's entry names its single date `date`; iOS 18 passes used `relevantDate`.
RELEVANT_DATE = Shape(
    {"date": "date", "startDate": "date", "endDate": "date"},
    rules=("a date or an interval",),
    quiet={"relevantDate": "date"},
)
# apple/pass-builder's Pass.Action; the types from "Defining the metadata of your Wallet Pass".
FEATURED_ACTION = Shape(
    {"identifier": "string", "type": Listed(FEATURED_ACTION_TYPES), "url": "string"},
    needs(("identifier", "type")),
    quiet={PASS_DESIGNER_ID: "string"},
)
# UpcomingPassInformationEntry (iOS 26): the events of a multi-event ticket, each with a details
# view of its own.
_REMOTE_IMAGE = Shape(
    {
        "URLs": ListOf(
            Shape(
                {"SHA256": "string", "URL": "string", "scale": "number", "size": "integer"},
                needs(("SHA256", "URL")),
            )
        ),
        "reuseExisting": "boolean",
    }
)
UPCOMING_ENTRY = Shape(
    {
        "identifier": "string",
        "name": "string",
        "type": OneOf(("event",)),
        "URLs": Shape(dict.fromkeys(EVENT_GUIDE_KEYS, "string")),
        "additionalInfoFields": ListOf(FIELDS["additionalInfoFields"]),
        "backFields": ListOf(FIELDS["backFields"]),
        "auxiliaryStoreIdentifiers": ListOf("integer"),
        "dateInformation": Shape(
            {
                "date": "date",
                "ignoreTimeComponents": "boolean",
                "isAllDay": "boolean",
                "isUnannounced": "boolean",
                "isUndetermined": "boolean",
                "timeZone": "timeZone",
            }
        ),
        "images": Shape({"headerImage": _REMOTE_IMAGE, "venueMap": _REMOTE_IMAGE}),
        "isActive": "boolean",
        "semantics": "semantics",
    },
    needs(("identifier", "name", "type")),
    ("unique field keys",),
)


# --- pass.json -----------------------------------------------------------------------------

PASS = Shape(
    {
        **LAYOUTS,
        **dict.fromkeys(STRING_KEYS, "string"),
        "passTypeIdentifier": "passTypeIdentifier",
        "teamIdentifier": "teamIdentifier",
        "serialNumber": "serialNumber",
        "description": "shownText",
        "organizationName": "shownText",
        "logoSymbolName": "sfSymbol",
        **dict.fromkeys(BOOLEAN_KEYS, "boolean"),
        **dict.fromkeys(COLOR_KEYS, "color"),
        **dict.fromkeys(DATE_KEYS, "date"),
        "formatVersion": "formatVersion",
        "associatedStoreIdentifiers": ListOf("integer"),
        "auxiliaryStoreIdentifiers": ListOf("integer"),
        "userInfo": "object",
        "maxDistance": "distance",
        "preferredStyleSchemes": ListOf("styleScheme"),
        "upcomingPassInformation": ListOf(UPCOMING_ENTRY, ("identifier", "upcoming entry")),
        "relevantDates": ListOf(RELEVANT_DATE),
        "locations": ListOf(LOCATION, rules=("at most ten locations",)),
        "beacons": ListOf(BEACON, rules=("at most ten beacon UUIDs",)),
        "barcode": LEGACY_BARCODE,
        "barcodes": ListOf(BARCODE, rules=("barcode fallbacks",)),
        "nfc": NFC,
        "semantics": "semantics",
        "featuredActions": ListOf(
            FEATURED_ACTION, ("identifier", "featured action"), ("at most two featured actions",)
        ),
        "webServiceURL": "webServiceURL",
        "authenticationToken": "authenticationToken",
    },
    needs(
        REQUIRED_KEYS,
        "pass.json has no {key}, which every pass needs.",
        "Add the {key} key at the top level of pass.json.",
    ),
    (
        "one style",
        "grouping only for events and boarding",
        "app launch needs an app",
        "barcode is deprecated",
        "web service",
        "relevance",
    ),
)
# Every top-level key, to suggest one for a misspelt key.
TOP_LEVEL_KEYS = frozenset(PASS.keys)
