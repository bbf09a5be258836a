"""Validation of Apple's current pass format (iOS 18 to 27): poster layouts, featured actions,
the semantic boarding pass, upcoming events and the images Wallet loads for them.

tests/test_modern_passes.py checks whole passes that must pass untouched; these tests take one
rule at a time.
"""

from __future__ import annotations

from typing import Any

import pytest

from passes.validation import (
    AIRLINE_SERVICE_KEYS,
    EVENT_GUIDE_KEYS,
    validate_package,
)
from tests.test_images import make_png
from tests.test_validation import messages, package, paths, store_card, validate_pass_json


def poster_generic(**overrides: Any) -> dict[str, Any]:
    """A poster generic pass with the generic fallback Apple's example pairs it with."""
    data = store_card(**overrides)
    del data["storeCard"]
    data.setdefault(
        "posterGeneric",
        {
            "headerFields": [{"key": "number", "label": "Guest No.", "value": "102035"}],
            "primaryFields": [{"key": "name", "label": "Name", "value": "Ryan Notch"}],
            "footerFields": [{"key": "type", "label": "Type", "value": "Family"}],
        },
    )
    data.setdefault(
        "generic", {"primaryFields": [{"key": "name", "label": "Name", "value": "Ryan Notch"}]}
    )
    return {key: value for key, value in data.items() if value is not None}


def poster_event(**overrides: Any) -> dict[str, Any]:
    data = store_card(preferredStyleSchemes=["posterEventTicket", "eventTicket"], **overrides)
    data["eventTicket"] = data.pop("storeCard")
    return data


def warnings_at(data: dict[str, Any]) -> list[str]:
    report = validate_pass_json(data)
    assert report.ok, messages(report.errors)
    return paths(report.warnings)


# --- top-level keys of iOS 18 to 27 -------------------------------------------------------


@pytest.mark.parametrize(
    "key", [*AIRLINE_SERVICE_KEYS, *EVENT_GUIDE_KEYS, "eventLogoText", "logoSymbolName"]
)
def test_string_keys_wallet_reads_are_known_and_must_be_strings(key: str) -> None:
    value = "star.fill" if key == "logoSymbolName" else "https://example.com/x"
    assert validate_pass_json(store_card(**{key: value})).warnings == []

    report = validate_pass_json(store_card(**{key: 42}))
    assert paths(report.errors) == [f"$.{key}"]
    assert report.errors[0].message == f"{key} must be a string, not the number 42."


def test_use_automatic_colors_is_a_boolean_and_the_misspelling_is_pointed_out() -> None:
    assert validate_pass_json(store_card(useAutomaticColors=True)).warnings == []
    assert paths(validate_pass_json(store_card(useAutomaticColors="yes")).errors) == [
        "$.useAutomaticColors"
    ]

    report = validate_pass_json(store_card(useAutomaticColor=True))
    assert paths(report.warnings) == ["$.useAutomaticColor"]
    assert "Did you mean useAutomaticColors?" in report.warnings[0].fix


def test_strip_color_is_a_colour() -> None:
    assert validate_pass_json(store_card(stripColor="rgb(1, 2, 3)")).warnings == []
    assert paths(validate_pass_json(store_card(stripColor="brown")).errors) == ["$.stripColor"]


def test_a_logo_symbol_name_that_is_not_an_sf_symbol_is_a_warning() -> None:
    report = validate_pass_json(store_card(logoSymbolName="Star Fill"))
    assert report.ok and paths(report.warnings) == ["$.logoSymbolName"]


# --- featured actions ---------------------------------------------------------------------


def action(identifier: str = "benefits", kind: str = "membershipBenefits", **more: Any) -> dict:
    return {"identifier": identifier, "type": kind, "url": "https://example.com/", **more}


def test_two_featured_actions_are_fine_and_pass_designer_ids_are_quiet() -> None:
    actions = [action(), action("visit", "place", _id="7A0C7B0E-6D2B-4D8B-9D39-1B3C7F0A8E11")]
    assert validate_pass_json(store_card(featuredActions=actions)).warnings == []


def test_more_than_two_featured_actions_is_a_warning() -> None:
    actions = [action("a"), action("b", "call"), action("c", "shop")]
    report = validate_pass_json(store_card(featuredActions=actions))
    assert report.ok and paths(report.warnings) == ["$.featuredActions"]
    assert "at most 2" in report.warnings[0].message


def test_featured_actions_are_type_checked() -> None:
    actions: list[Any] = [
        {"type": "call"},
        action("x", 3),
        action("y", url=5),
        "call",
        action("dup"),
        action("dup", "place"),
    ]
    report = validate_pass_json(store_card(featuredActions=actions))
    assert paths(report.errors) == [
        "$.featuredActions[0].identifier",
        "$.featuredActions[1].type",
        "$.featuredActions[2].url",
        "$.featuredActions[3]",
        "$.featuredActions[5].identifier",
    ]
    assert paths(validate_pass_json(store_card(featuredActions={})).errors) == ["$.featuredActions"]


def test_a_featured_action_type_apple_does_not_list_is_a_warning() -> None:
    report = validate_pass_json(store_card(featuredActions=[action(kind="viewMenu")]))
    assert report.ok and paths(report.warnings) == ["$.featuredActions[0].type"]


# --- poster generic (iOS 27) ----------------------------------------------------------------


def test_poster_generic_beside_its_fallback_is_quiet() -> None:
    # Field keys repeat across the two layouts, as in Apple's own example.
    assert warnings_at(poster_generic()) == []


def test_poster_generic_alone_works_on_ios_27_only() -> None:
    assert warnings_at(poster_generic(generic=None)) == ["$"]


def test_two_fallback_styles_beside_a_poster_are_still_two_styles() -> None:
    report = validate_pass_json(poster_generic(coupon={}))
    assert paths(report.errors) == ["$"] and "2 pass styles" in report.errors[0].message


def test_field_keys_are_unique_within_one_layout() -> None:
    data = poster_generic()
    data["posterGeneric"]["footerFields"] = [{"key": "name", "value": "again"}]
    assert paths(validate_pass_json(data).errors) == ["$.posterGeneric.footerFields[0].key"]


def test_poster_generic_shows_its_own_number_of_fields() -> None:
    data = poster_generic()
    fields = [{"key": f"f{n}", "value": "x"} for n in range(5)]
    data["posterGeneric"].update(
        headerFields=fields[:2],
        primaryFields=fields[:4],
        secondaryFields=[{"key": "s", "value": "x"}],
        footerFields=[{"key": f"t{n}", "value": "x"} for n in range(3)],
    )
    data["posterGeneric"]["primaryFields"] = [{"key": f"p{n}", "value": "x"} for n in range(4)]
    report = validate_pass_json(data)
    assert report.ok
    assert sorted(paths(report.warnings)) == [
        "$.posterGeneric.footerFields",
        "$.posterGeneric.headerFields",
        "$.posterGeneric.secondaryFields",
    ]


@pytest.mark.parametrize(
    ("style", "group", "warned"),
    [
        ("storeCard", "footerFields", True),
        ("storeCard", "additionalInfoFields", True),
        ("posterGeneric", "additionalInfoFields", False),
        ("eventTicket", "additionalInfoFields", False),
    ],
)
def test_field_groups_only_some_layouts_show(style: str, group: str, warned: bool) -> None:
    data = poster_generic() if style == "posterGeneric" else store_card()
    if style == "eventTicket":
        data["eventTicket"] = data.pop("storeCard")
    data[style][group] = [{"key": "extra", "value": "x"}]
    assert warnings_at(data) == ([f"$.{style}.{group}"] if warned else [])


# --- semantic tags of iOS 26 ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "good", "bad"),
    [
        ("departureCityName", "London", 5),
        ("ticketFareClass", "Economy", ["Economy"]),
        ("boardingZone", "3", 3),
        ("internationalDocumentsAreVerified", True, "yes"),
        ("loungePlaceIDs", ["I63802D3A9A1E5D4C"], "I63802D3A9A1E5D4C"),
        ("passengerServiceSSRs", ["WCHR"], [1]),
        ("passengerCapabilities", ["PKPassengerCapabilityLapInfant"], "lap infant"),
        ("departureLocationSecurityPrograms", ["PKTransitSecurityProgramCLEAR"], [None]),
        ("departureLocationTimeZone", "America/Chicago", "Chicago"),
        ("destinationAirportTimeZone", "Europe/London", 0),
        ("eventTimeZone", "Asia/Tokyo", "JST+9"),
    ],
)
def test_new_semantic_tags_are_known_and_type_checked(tag: str, good: Any, bad: Any) -> None:
    assert validate_pass_json(store_card(semantics={tag: good})).warnings == []
    assert paths(validate_pass_json(store_card(semantics={tag: bad})).errors)[0].startswith(
        f"$.semantics.{tag}"
    )


def test_a_capability_apple_does_not_list_is_a_warning() -> None:
    report = validate_pass_json(
        store_card(semantics={"passengerCapabilities": ["PKPassengerCapabilityCarryOn"]})
    )
    assert report.ok and paths(report.warnings) == ["$.semantics.passengerCapabilities[0]"]


@pytest.mark.parametrize(
    ("spelling", "reads"),
    [
        ("airlineLoungePlaceID", "loungePlaceIDs"),
        ("departureAirportSecurityPrograms", "departureLocationSecurityPrograms"),
        ("airplay", "airPlay"),
    ],
)
def test_spellings_wallet_does_not_read_name_the_one_it_does(spelling: str, reads: str) -> None:
    report = validate_pass_json(store_card(semantics={spelling: []}))
    assert report.ok and paths(report.warnings) == [f"$.semantics.{spelling}"]
    assert f"Wallet reads {reads}" in report.warnings[0].fix


# --- upcoming events (iOS 26) ---------------------------------------------------------------


def entry(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "identifier": "day-1",
        "name": "Day 1",
        "type": "event",
        "dateInformation": {"date": "2026-08-21T13:00-08:00", "timeZone": "America/Los_Angeles"},
        "URLs": {"bagPolicyURL": "https://venue.example.com/bags"},
        "images": {"venueMap": {"reuseExisting": True}},
        "backFields": [{"key": "doors", "label": "Doors", "value": "12:00"}],
        "semantics": {"eventName": "Festival, day 1"},
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


def test_an_upcoming_event_entry_is_quiet() -> None:
    assert warnings_at(poster_event(upcomingPassInformation=[entry(), entry(identifier="2")])) == []


def test_upcoming_entries_are_type_checked() -> None:
    entries = [
        entry(identifier=None, name=None),
        entry(identifier="b", type="concert"),
        entry(identifier="c", dateInformation={"date": "tomorrow", "timeZone": "Nowhere/Land"}),
        entry(identifier="d", backFields=[{"key": "doors"}]),
        entry(identifier="e", images={"headerImage": {"URLs": [{"URL": "https://x/y.png"}]}}),
        entry(identifier="e"),
    ]
    report = validate_pass_json(poster_event(upcomingPassInformation=entries))
    assert paths(report.errors) == [
        "$.upcomingPassInformation[0].identifier",
        "$.upcomingPassInformation[0].name",
        "$.upcomingPassInformation[1].type",
        "$.upcomingPassInformation[2].dateInformation.date",
        "$.upcomingPassInformation[2].dateInformation.timeZone",
        "$.upcomingPassInformation[3].backFields[0].value",
        "$.upcomingPassInformation[4].images.headerImage.URLs[0].SHA256",
        "$.upcomingPassInformation[5].identifier",
    ]


def test_an_upcoming_entry_key_in_the_wrong_case_is_pointed_out() -> None:
    report = validate_pass_json(poster_event(upcomingPassInformation=[entry(urls={})]))
    assert report.ok and paths(report.warnings) == ["$.upcomingPassInformation[0].urls"]
    assert "Did you mean URLs?" in report.warnings[0].fix


# --- barcodes -------------------------------------------------------------------------------


def barcode(fmt: str, message: str = "400638133393") -> dict[str, str]:
    return {"format": fmt, "message": message, "messageEncoding": "iso-8859-1"}


def test_a_new_barcode_format_after_an_older_one_is_never_shown() -> None:
    codes = [barcode("PKBarcodeFormatQR"), barcode("PKBarcodeFormatEAN13")]
    report = validate_pass_json(store_card(barcodes=codes))
    assert report.ok and paths(report.warnings) == ["$.barcodes[1]"]
    assert "never shown" in report.warnings[0].message

    codes.reverse()
    assert validate_pass_json(store_card(barcodes=codes)).warnings == []


# --- images and files ---------------------------------------------------------------------


POSTER_IMAGES = {
    "artwork@2x.png": make_png(716, 896),
    "primaryLogo@2x.png": make_png(252, 60),
    "secondaryLogo@2x.png": make_png(270, 24),
    "venueMap@2x.png": make_png(1600, 1200),
    "background@2x.png": make_png(690, 1010),
}


def test_poster_event_ticket_images_are_files_wallet_uses() -> None:
    report = validate_package(package(poster_event(), **POSTER_IMAGES))
    assert report.ok and report.warnings == [], messages(report.warnings)


def test_poster_images_in_an_event_ticket_that_is_no_poster_are_ignored() -> None:
    data = poster_event()
    del data["preferredStyleSchemes"]
    report = validate_package(package(data, **POSTER_IMAGES))
    assert report.ok
    assert sorted(paths(report.warnings)) == [
        "artwork@2x.png",
        "background@2x.png",  # larger than a plain event ticket's 180x220 pt
        "primaryLogo@2x.png",
        "secondaryLogo@2x.png",
        "venueMap@2x.png",
    ]


def test_poster_generic_images_are_files_wallet_uses() -> None:
    images = {name: image for name, image in POSTER_IMAGES.items() if "venueMap" not in name}
    report = validate_package(package(poster_generic(), **images))
    assert report.ok and report.warnings == [], messages(report.warnings)


def test_an_oversized_poster_image_is_a_warning() -> None:
    report = validate_package(package(poster_event(), **{"artwork@2x.png": make_png(900, 896)}))
    assert report.ok and paths(report.warnings) == ["artwork@2x.png"]


def test_pass_designer_files_and_ids_get_the_right_words() -> None:
    data = store_card()
    data["storeCard"]["primaryFields"][0]["_id"] = "9B2D1C3E-0F4A-4B5C-8D6E-7F8091A2B3C4"
    report = validate_package(package(data, **{"tooling.json": b'{"designerVersion": "1.0"}'}))
    assert report.ok and paths(report.warnings) == ["tooling.json"]
    assert "Pass Designer's record of the template" in report.warnings[0].message
