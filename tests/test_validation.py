"""Validation of pass.json and of whole unsigned pass packages."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from passes.validation import (
    PassInvalid,
    Problem,
    Report,
    ensure_valid,
    parse_w3c_datetime,
    validate_package,
)
from tests.strings_tools import encode_strings
from tests.test_images import make_png

TOKEN = "0123456789abcdef0123456789abcdef"


def store_card(**overrides: Any) -> dict[str, Any]:
    """A small, valid store card; keyword arguments replace or add top-level keys."""
    data: dict[str, Any] = {
        "formatVersion": 1,
        "passTypeIdentifier": "pass.com.example.loyalty",
        "serialNumber": "SN-1",
        "teamIdentifier": "ABCDE12345",
        "organizationName": "Example Coffee",
        "description": "Example Coffee loyalty card",
        "storeCard": {
            "primaryFields": [{"key": "points", "label": "Points", "value": 120}],
            "backFields": [{"key": "terms", "label": "Terms", "value": "Be nice."}],
        },
        "barcodes": [
            {"format": "PKBarcodeFormatQR", "message": "SN-1", "messageEncoding": "iso-8859-1"}
        ],
        "webServiceURL": "https://passes.example.com/",
        "authenticationToken": TOKEN,
    }
    data.update(overrides)
    return data


def with_fields(group: str, *fields: dict[str, Any], style: str = "storeCard") -> dict[str, Any]:
    data = store_card()
    data[style] = data.pop("storeCard") if style != "storeCard" else data["storeCard"]
    data[style][group] = list(fields)
    if style == "boardingPass":
        data[style]["transitType"] = "PKTransitTypeAir"
    return data


def package(pass_json: dict[str, Any] | None = None, **files: bytes) -> dict[str, bytes]:
    """A valid package around `pass_json`; keyword names use __ for '/' and _ for '.'."""
    result = {
        "pass.json": json.dumps(pass_json or store_card()).encode(),
        "icon.png": make_png(29, 29),
        "icon@2x.png": make_png(58, 58),
        "logo@2x.png": make_png(300, 100),
    }
    result.update(files)
    return result


def validate_pass_json(pass_json: object) -> Report:
    """What validation says about a pass.json (a document, or its bytes), in a package that is
    otherwise valid: the findings about pass.json alone."""
    raw = pass_json if isinstance(pass_json, bytes) else json.dumps(pass_json).encode()
    report = validate_package({**package(), "pass.json": raw})

    def about_pass_json(problems: list[Problem]) -> list[Problem]:
        return [p for p in problems if p.path == "pass.json" or p.path.startswith("$")]

    return Report(about_pass_json(report.errors), about_pass_json(report.warnings))


def paths(problems: list[Problem]) -> list[str]:
    return [p.path for p in problems]


def messages(problems: list[Problem]) -> str:
    return "\n".join(f"{p.path}: {p.message}" for p in problems)


def p256_key() -> str:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


# --- the report -----------------------------------------------------------------------------


def test_valid_store_card_has_no_errors_and_no_warnings() -> None:
    report = validate_pass_json(store_card())
    assert report.ok
    assert report.errors == [] and report.warnings == [], messages(report.warnings)


def test_every_problem_is_reported_at_once() -> None:
    data = store_card(formatVersion=2, backgroundColor="red", voided="no")
    del data["description"]
    data["storeCard"]["primaryFields"][0]["changeMessage"] = "Points changed"
    report = validate_pass_json(data)
    assert set(paths(report.errors)) == {
        "$.description",
        "$.formatVersion",
        "$.backgroundColor",
        "$.voided",
        "$.storeCard.primaryFields[0].changeMessage",
    }


def test_problem_and_report_serialise_for_the_admin_api() -> None:
    report = validate_pass_json(store_card(formatVersion="1"))
    body = report.as_dict()
    assert body["warnings"] == []
    assert body["errors"] == [
        {
            "path": "$.formatVersion",
            "message": 'formatVersion must be the number 1, not the string "1".',
            "fix": 'Write "formatVersion": 1 (a number, without quotes).',
        }
    ]
    assert report.errors[0].as_dict() == body["errors"][0]


def test_validate_pass_json_reads_raw_bytes_too() -> None:
    assert validate_pass_json(json.dumps(store_card()).encode()).ok
    assert paths(validate_pass_json(b"{").errors) == ["pass.json"]


def test_pass_json_that_is_not_an_object_is_an_error() -> None:
    assert paths(validate_pass_json([1, 2]).errors) == ["$"]


# --- top-level keys -------------------------------------------------------------------------


def test_missing_required_keys_are_each_reported() -> None:
    report = validate_pass_json({"generic": {}})
    assert sorted(paths(report.errors)) == [
        "$.description",
        "$.formatVersion",
        "$.organizationName",
        "$.passTypeIdentifier",
        "$.serialNumber",
        "$.teamIdentifier",
    ]


@pytest.mark.parametrize("version", [2, "1", True, None])
def test_format_version_must_be_the_number_one(version: object) -> None:
    assert paths(validate_pass_json(store_card(formatVersion=version)).errors) == [
        "$.formatVersion"
    ]


def test_pass_without_a_style_is_an_error() -> None:
    data = store_card()
    del data["storeCard"]
    report = validate_pass_json(data)
    assert paths(report.errors) == ["$"] and "no pass style" in report.errors[0].message


def test_pass_with_two_styles_is_an_error() -> None:
    report = validate_pass_json(store_card(coupon={}))
    assert paths(report.errors) == ["$"] and "2 pass styles" in report.errors[0].message


def test_boarding_pass_needs_a_transit_type() -> None:
    data = store_card(boardingPass={"primaryFields": []})
    del data["storeCard"]
    assert paths(validate_pass_json(data).errors) == ["$.boardingPass.transitType"]
    data["boardingPass"]["transitType"] = "PKTransitTypePlane"
    assert paths(validate_pass_json(data).errors) == ["$.boardingPass.transitType"]
    data["boardingPass"]["transitType"] = "PKTransitTypeTrain"
    assert validate_pass_json(data).ok


def test_transit_type_outside_a_boarding_pass_is_a_warning() -> None:
    data = store_card()
    data["storeCard"]["transitType"] = "PKTransitTypeAir"
    report = validate_pass_json(data)
    assert report.ok and paths(report.warnings) == ["$.storeCard.transitType"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("voided", "yes"),
        ("sharingProhibited", 1),
        ("suppressStripShine", None),
        ("logoText", 5),
        ("userInfo", ["not", "a", "dict"]),
        ("maxDistance", "100"),
        ("associatedStoreIdentifiers", 123),
        ("appLaunchURL", {"url": "x"}),
        ("organizationName", False),
    ],
)
def test_known_keys_must_have_their_documented_type(key: str, value: object) -> None:
    report = validate_pass_json(store_card(**{key: value}))
    assert paths(report.errors) == [f"$.{key}"]


def test_store_identifiers_must_be_whole_numbers() -> None:
    report = validate_pass_json(store_card(associatedStoreIdentifiers=[284882215, "x", 1.5]))
    assert paths(report.errors) == [
        "$.associatedStoreIdentifiers[1]",
        "$.associatedStoreIdentifiers[2]",
    ]


def test_pass_type_identifier_must_start_with_pass() -> None:
    report = validate_pass_json(store_card(passTypeIdentifier="com.example.loyalty"))
    assert paths(report.errors) == ["$.passTypeIdentifier"]


def test_odd_team_identifier_is_a_warning() -> None:
    report = validate_pass_json(store_card(teamIdentifier="abc"))
    assert report.ok and paths(report.warnings) == ["$.teamIdentifier"]


def test_unknown_top_level_key_is_a_warning() -> None:
    report = validate_pass_json(store_card(backgroundColour="rgb(0, 0, 0)"))
    assert report.ok and paths(report.warnings) == ["$.backgroundColour"]


def test_newer_documented_keys_are_not_reported_as_unknown() -> None:
    data = store_card(
        sharingProhibited=True,
        suppressHeaderDarkening=True,
        footerBackgroundColor="rgb(1, 2, 3)",
        preferredStyleSchemes=["posterEventTicket", "eventTicket"],
        relevantDates=[{"date": "2026-11-22T10:00:00Z"}],
        auxiliaryStoreIdentifiers=[1],
        bagPolicyURL="https://example.com/bags",
        userInfo={"tier": "gold"},
    )
    report = validate_pass_json(data)
    assert report.errors == [] and report.warnings == [], messages(report.warnings)


def test_grouping_identifier_outside_tickets_and_boarding_passes_is_a_warning() -> None:
    report = validate_pass_json(store_card(groupingIdentifier="trip-1"))
    assert report.ok and paths(report.warnings) == ["$.groupingIdentifier"]


def test_app_launch_url_without_store_identifiers_is_a_warning() -> None:
    report = validate_pass_json(store_card(appLaunchURL="coffee://card"))
    assert report.ok and paths(report.warnings) == ["$.appLaunchURL"]
    assert (
        validate_pass_json(
            store_card(appLaunchURL="coffee://card", associatedStoreIdentifiers=[284882215])
        ).warnings
        == []
    )


# --- dates and colours -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-22T10:00:00Z",
        "2026-11-22T10:00Z",
        "2026-11-22T10:00-08:00",
        "2026-11-22T10:00:00.250+05:30",
    ],
)
def test_w3c_dates_with_time_zone_are_accepted(value: str) -> None:
    assert validate_pass_json(store_card(expirationDate=value)).ok
    assert parse_w3c_datetime(value) is not None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2026-11-22", "no time and time zone"),
        ("2026-11-22T10:00:00", "no time zone"),
        ("2026-11-22T10:00:00+0100", "without a colon"),
        ("22/11/2026 10:00", "not an ISO 8601"),
        ("2026-13-01T10:00Z", "not an ISO 8601"),
        ("2026-02-30T10:00Z", "not an ISO 8601"),
        ("2026-11-22T10:00+25:00", "not an ISO 8601"),
        (1795860000, "must be a string"),
    ],
)
def test_dates_without_full_time_and_zone_are_errors(value: object, reason: str) -> None:
    report = validate_pass_json(store_card(relevantDate=value, locations=[]))
    assert paths(report.errors) == ["$.relevantDate"]
    assert reason in report.errors[0].message


def test_parsed_date_keeps_its_offset() -> None:
    parsed = parse_w3c_datetime("2026-11-22T10:00-08:00")
    assert parsed is not None and parsed.utcoffset() is not None
    assert parsed.isoformat() == "2026-11-22T10:00:00-08:00"


def test_relevant_dates_accept_single_dates_and_intervals() -> None:
    data = store_card(
        relevantDates=[
            {"date": "2026-11-22T10:00Z"},
            {"startDate": "2026-11-22T18:00Z", "endDate": "2026-11-22T23:00Z"},
        ]
    )
    assert validate_pass_json(data).ok


@pytest.mark.parametrize(
    ("entry", "path"),
    [
        ({"startDate": "2026-11-22T18:00Z"}, "$.relevantDates[0]"),
        ({}, "$.relevantDates[0]"),
        (
            {
                "date": "2026-11-22T18:00Z",
                "startDate": "2026-11-22T18:00Z",
                "endDate": "2026-11-22T19:00Z",
            },
            "$.relevantDates[0]",
        ),
        (
            {"startDate": "2026-11-22T18:00Z", "endDate": "2026-11-22T17:00Z"},
            "$.relevantDates[0].endDate",
        ),
        ({"date": "tomorrow"}, "$.relevantDates[0].date"),
    ],
)
def test_malformed_relevant_dates_are_errors(entry: dict[str, str], path: str) -> None:
    assert paths(validate_pass_json(store_card(relevantDates=[entry])).errors) == [path]


@pytest.mark.parametrize("color", ["rgb(255, 255, 255)", "rgb(0,0,0)", "rgb( 23 , 187 , 82 )"])
def test_rgb_colours_are_accepted(color: str) -> None:
    report = validate_pass_json(store_card(backgroundColor=color))
    assert report.ok and report.warnings == []


@pytest.mark.parametrize("color", ["rgb(256, 0, 0)", "red", "rgb(1, 2)", "rgba(1, 2, 3, 0.5)"])
def test_colours_wallet_cannot_read_are_errors(color: str) -> None:
    assert paths(validate_pass_json(store_card(labelColor=color)).errors) == ["$.labelColor"]


def test_hex_colour_is_a_warning_with_the_rgb_spelling() -> None:
    report = validate_pass_json(store_card(foregroundColor="#FF8000"))
    assert report.ok and report.warnings[0].fix == "Write it as rgb(255, 128, 0)."


# --- fields ---------------------------------------------------------------------------------


def test_change_message_without_placeholder_is_reported() -> None:
    data = with_fields(
        "primaryFields", {"key": "gate", "value": "A1", "changeMessage": "Gate changed"}
    )
    report = validate_pass_json(data)
    assert paths(report.errors) == ["$.storeCard.primaryFields[0].changeMessage"]
    assert "%@" in report.errors[0].message


@pytest.mark.parametrize("message", ["Gate changed to %@.", "%1$@ is your new gate"])
def test_change_message_with_placeholder_is_accepted(message: str) -> None:
    data = with_fields("primaryFields", {"key": "gate", "value": "A1", "changeMessage": message})
    assert validate_pass_json(data).ok


def test_localized_change_message_is_checked_in_every_language() -> None:
    data = with_fields(
        "primaryFields", {"key": "gate", "value": "A1", "changeMessage": "gate_changed"}
    )
    files = package(
        data,
        **{
            "en.lproj/pass.strings": encode_strings({"gate_changed": "Gate changed to %@."}),
            "fr.lproj/pass.strings": encode_strings({"gate_changed": "Nouvelle porte"}),
        },
    )
    report = validate_package(files)
    assert paths(report.errors) == ["$.storeCard.primaryFields[0].changeMessage"]
    assert "fr.lproj/pass.strings" in report.errors[0].message


def test_field_keys_must_be_unique_across_the_whole_pass() -> None:
    data = store_card()
    data["storeCard"]["headerFields"] = [{"key": "terms", "value": "x"}]
    report = validate_pass_json(data)
    assert paths(report.errors) == ["$.storeCard.headerFields[0].key"]
    assert "$.storeCard.backFields[0].key" in report.errors[0].message


def test_field_needs_a_key_and_a_value() -> None:
    report = validate_pass_json(with_fields("secondaryFields", {"label": "Name"}))
    assert paths(report.errors) == [
        "$.storeCard.secondaryFields[0].key",
        "$.storeCard.secondaryFields[0].value",
    ]


@pytest.mark.parametrize("value", [True, None, {"a": 1}, ["a"]])
def test_field_value_must_be_text_or_a_number(value: object) -> None:
    report = validate_pass_json(with_fields("secondaryFields", {"key": "k", "value": value}))
    assert paths(report.errors) == ["$.storeCard.secondaryFields[0].value"]


def test_date_style_needs_an_iso_date_value() -> None:
    good = {"key": "d", "value": "2026-11-22T19:30-06:00", "dateStyle": "PKDateStyleMedium"}
    assert validate_pass_json(with_fields("secondaryFields", good)).ok
    bad = {**good, "value": "Saturday"}
    report = validate_pass_json(with_fields("secondaryFields", bad))
    assert paths(report.errors) == ["$.storeCard.secondaryFields[0].value"]


def test_time_style_alone_also_makes_the_value_a_date() -> None:
    field = {"key": "d", "value": "19:30", "timeStyle": "PKDateStyleShort"}
    assert paths(validate_pass_json(with_fields("auxiliaryFields", field)).errors) == [
        "$.storeCard.auxiliaryFields[0].value"
    ]


def test_unknown_date_style_is_an_error() -> None:
    field = {"key": "d", "value": "2026-11-22T19:30Z", "dateStyle": "PKDateStyleHuge"}
    assert paths(validate_pass_json(with_fields("secondaryFields", field)).errors) == [
        "$.storeCard.secondaryFields[0].dateStyle"
    ]


def test_number_style_needs_a_number_value() -> None:
    field = {"key": "n", "value": "5", "numberStyle": "PKNumberStyleSpellOut"}
    report = validate_pass_json(with_fields("secondaryFields", field))
    assert paths(report.errors) == ["$.storeCard.secondaryFields[0].value"]
    assert validate_pass_json(with_fields("secondaryFields", {**field, "value": 5})).ok


def test_currency_code_needs_a_number_and_three_capital_letters() -> None:
    field = {"key": "balance", "value": "21.75", "currencyCode": "eur"}
    report = validate_pass_json(with_fields("primaryFields", field))
    assert sorted(paths(report.errors)) == [
        "$.storeCard.primaryFields[0].currencyCode",
        "$.storeCard.primaryFields[0].value",
    ]
    ok = {"key": "balance", "value": 21.75, "currencyCode": "EUR"}
    assert validate_pass_json(with_fields("primaryFields", ok)).ok


def test_currency_code_and_number_style_together_is_an_error() -> None:
    field = {
        "key": "b",
        "value": 3,
        "currencyCode": "USD",
        "numberStyle": "PKNumberStyleDecimal",
    }
    report = validate_pass_json(with_fields("primaryFields", field))
    assert paths(report.errors) == ["$.storeCard.primaryFields[0]"]


def test_text_alignment_must_be_a_known_value() -> None:
    field = {"key": "k", "value": "v", "textAlignment": "left"}
    assert paths(validate_pass_json(with_fields("secondaryFields", field)).errors) == [
        "$.storeCard.secondaryFields[0].textAlignment"
    ]


def test_text_alignment_on_primary_fields_is_a_warning() -> None:
    field = {"key": "k", "value": "v", "textAlignment": "PKTextAlignmentRight"}
    report = validate_pass_json(with_fields("primaryFields", field))
    assert report.ok and paths(report.warnings) == ["$.storeCard.primaryFields[0].textAlignment"]
    assert validate_pass_json(with_fields("secondaryFields", field)).warnings == []


def test_data_detectors_must_be_known_and_only_work_on_back_fields() -> None:
    field = {"key": "k", "value": "v", "dataDetectorTypes": ["PKDataDetectorTypeLink"]}
    assert validate_pass_json(with_fields("backFields", field)).warnings == []
    front = validate_pass_json(with_fields("secondaryFields", field))
    assert front.ok and paths(front.warnings) == [
        "$.storeCard.secondaryFields[0].dataDetectorTypes"
    ]
    bad = {**field, "dataDetectorTypes": ["PKDataDetectorTypeEmail"]}
    assert paths(validate_pass_json(with_fields("backFields", bad)).errors) == [
        "$.storeCard.backFields[0].dataDetectorTypes[0]"
    ]


def test_attributed_value_with_markup_other_than_links_is_a_warning() -> None:
    link = {"key": "k", "value": "v", "attributedValue": "<a href='https://x.example'>Edit</a>"}
    assert validate_pass_json(with_fields("backFields", link)).warnings == []
    bold = {**link, "attributedValue": "<b>Bold</b> <a href='x'>y</a>"}
    report = validate_pass_json(with_fields("backFields", bold))
    assert report.ok and "<b>" in report.warnings[0].message


def test_unknown_field_key_is_a_warning() -> None:
    field = {"key": "k", "value": "v", "lable": "Typo"}
    report = validate_pass_json(with_fields("secondaryFields", field))
    assert report.ok and paths(report.warnings) == ["$.storeCard.secondaryFields[0].lable"]


def test_more_primary_fields_than_a_store_card_shows_is_a_warning() -> None:
    data = with_fields("primaryFields", {"key": "a", "value": 1}, {"key": "b", "value": 2})
    report = validate_pass_json(data)
    assert report.ok and paths(report.warnings) == ["$.storeCard.primaryFields"]


def test_boarding_pass_shows_two_primary_and_five_auxiliary_fields() -> None:
    two = [{"key": f"p{i}", "value": "X"} for i in range(2)]
    five = [{"key": f"a{i}", "value": "X"} for i in range(5)]
    data = with_fields("primaryFields", *two, style="boardingPass")
    data["boardingPass"]["auxiliaryFields"] = five
    assert validate_pass_json(data).warnings == []
    data["boardingPass"]["auxiliaryFields"].append({"key": "a5", "value": "X"})
    assert paths(validate_pass_json(data).warnings) == ["$.boardingPass.auxiliaryFields"]


def test_square_barcode_limits_secondary_and_auxiliary_fields_together() -> None:
    data = store_card()
    data["storeCard"]["secondaryFields"] = [{"key": f"s{i}", "value": 1} for i in range(3)]
    data["storeCard"]["auxiliaryFields"] = [{"key": f"x{i}", "value": 1} for i in range(2)]
    assert paths(validate_pass_json(data).warnings) == ["$.storeCard"]
    data["barcodes"][0]["format"] = "PKBarcodeFormatPDF417"
    assert validate_pass_json(data).warnings == []


def test_event_ticket_auxiliary_fields_count_per_row() -> None:
    rows = [{"key": f"a{i}", "value": "x", "row": i // 4} for i in range(8)]
    data = with_fields("auxiliaryFields", *rows, style="eventTicket")
    assert validate_pass_json(data).warnings == []
    data["eventTicket"]["auxiliaryFields"][4]["row"] = 0
    assert paths(validate_pass_json(data).warnings) == ["$.eventTicket.auxiliaryFields"]
    data["eventTicket"]["auxiliaryFields"][4]["row"] = 2
    assert paths(validate_pass_json(data).errors) == ["$.eventTicket.auxiliaryFields[4].row"]


def test_odd_row_value_is_reported_without_breaking_the_row_count() -> None:
    data = with_fields(
        "auxiliaryFields", {"key": "a", "value": "b", "row": [1]}, style="eventTicket"
    )
    assert paths(validate_pass_json(data).errors) == ["$.eventTicket.auxiliaryFields[0].row"]


def test_additional_info_fields_outside_event_tickets_are_a_warning() -> None:
    data = with_fields("additionalInfoFields", {"key": "k", "value": "v"})
    report = validate_pass_json(data)
    assert report.ok and paths(report.warnings) == ["$.storeCard.additionalInfoFields"]
    ticket = with_fields("additionalInfoFields", {"key": "k", "value": "v"}, style="eventTicket")
    assert validate_pass_json(ticket).warnings == []


# --- web service ----------------------------------------------------------------------------


def test_web_service_url_must_use_https() -> None:
    report = validate_pass_json(store_card(webServiceURL="http://passes.example.com/"))
    assert paths(report.errors) == ["$.webServiceURL"]


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:5000/",
        "http://127.0.0.1/passes",
        "http://127.8.9.10/",
        "http://[::1]:8080/",
    ],
)
def test_plain_http_on_loopback_is_only_a_warning(url: str) -> None:
    report = validate_pass_json(store_card(webServiceURL=url))
    assert report.ok and paths(report.warnings) == ["$.webServiceURL"]


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "passes.example.com", "https://", "https://x:99999/"]
)
def test_web_service_url_must_be_an_http_url_with_a_host(url: str) -> None:
    assert paths(validate_pass_json(store_card(webServiceURL=url)).errors) == ["$.webServiceURL"]


def test_web_service_url_ending_in_v1_is_a_warning() -> None:
    report = validate_pass_json(store_card(webServiceURL="https://example.com/passes/v1/"))
    assert report.ok and paths(report.warnings) == ["$.webServiceURL"]


def test_web_service_url_without_token_is_an_error() -> None:
    data = store_card()
    del data["authenticationToken"]
    assert paths(validate_pass_json(data).errors) == ["$.authenticationToken"]


def test_token_without_web_service_url_is_a_warning() -> None:
    data = store_card()
    del data["webServiceURL"]
    report = validate_pass_json(data)
    assert report.ok and paths(report.warnings) == ["$.authenticationToken"]


def test_authentication_token_needs_sixteen_characters() -> None:
    assert paths(validate_pass_json(store_card(authenticationToken="x" * 15)).errors) == [
        "$.authenticationToken"
    ]
    assert validate_pass_json(store_card(authenticationToken="x" * 16)).ok


def test_authentication_token_must_fit_in_an_http_header() -> None:
    report = validate_pass_json(store_card(authenticationToken="tökén-with-ümlauts-1234"))
    assert paths(report.errors) == ["$.authenticationToken"]


# --- barcodes -------------------------------------------------------------------------------


def test_barcode_needs_format_message_and_encoding() -> None:
    report = validate_pass_json(store_card(barcodes=[{"altText": "123"}]))
    assert paths(report.errors) == [
        "$.barcodes[0].format",
        "$.barcodes[0].message",
        "$.barcodes[0].messageEncoding",
    ]


def test_unknown_barcode_format_is_an_error() -> None:
    barcode = {"format": "PKBarcodeFormatDataMatrix", "message": "x", "messageEncoding": "utf-8"}
    assert paths(validate_pass_json(store_card(barcodes=[barcode])).errors) == [
        "$.barcodes[0].format"
    ]


def test_code128_alone_warns_that_apple_watch_shows_no_barcode() -> None:
    code128 = {"format": "PKBarcodeFormatCode128", "message": "123", "messageEncoding": "utf-8"}
    report = validate_pass_json(store_card(barcodes=[code128]))
    assert report.ok and paths(report.warnings) == ["$.barcodes[0]"]
    qr = {**code128, "format": "PKBarcodeFormatQR"}
    assert validate_pass_json(store_card(barcodes=[code128, qr])).warnings == []


def test_deprecated_barcode_cannot_use_code128() -> None:
    code128 = {"format": "PKBarcodeFormatCode128", "message": "123", "messageEncoding": "utf-8"}
    report = validate_pass_json(store_card(barcode=code128))
    assert paths(report.errors) == ["$.barcode.format"]


def test_deprecated_barcode_alone_is_a_warning() -> None:
    data = store_card()
    data["barcode"] = data.pop("barcodes")[0]
    report = validate_pass_json(data)
    assert report.ok and paths(report.warnings) == ["$.barcode"]


def test_barcode_message_must_fit_its_encoding() -> None:
    barcode = {
        "format": "PKBarcodeFormatQR",
        "message": "Price €5",
        "messageEncoding": "iso-8859-1",
    }
    report = validate_pass_json(store_card(barcodes=[barcode]))
    assert paths(report.errors) == ["$.barcodes[0].message"] and "€" in report.errors[0].message
    barcode["messageEncoding"] = "utf-8"
    assert validate_pass_json(store_card(barcodes=[barcode])).ok


def test_ios27_barcode_formats_need_an_older_fallback_after_them() -> None:
    ean = {"format": "PKBarcodeFormatEAN13", "message": "4006381333931", "messageEncoding": "utf-8"}
    qr = {"format": "PKBarcodeFormatQR", "message": "x", "messageEncoding": "utf-8"}
    assert paths(validate_pass_json(store_card(barcodes=[ean])).warnings) == ["$.barcodes[0]"]
    assert paths(validate_pass_json(store_card(barcodes=[qr, ean])).warnings) == ["$.barcodes[1]"]
    assert validate_pass_json(store_card(barcodes=[ean, qr])).warnings == []


@pytest.mark.parametrize("message", ["400638133393", "4006381333931"])
def test_ean13_accepts_twelve_digits_or_a_correct_check_digit(message: str) -> None:
    ean = {"format": "PKBarcodeFormatEAN13", "message": message, "messageEncoding": "utf-8"}
    qr = {"format": "PKBarcodeFormatQR", "message": "x", "messageEncoding": "utf-8"}
    assert validate_pass_json(store_card(barcodes=[ean, qr])).ok


@pytest.mark.parametrize("message", ["4006381333932", "12345", "ABCDEFGHIJKLM"])
def test_ean13_with_wrong_digits_is_an_error(message: str) -> None:
    ean = {"format": "PKBarcodeFormatEAN13", "message": message, "messageEncoding": "utf-8"}
    qr = {"format": "PKBarcodeFormatQR", "message": "x", "messageEncoding": "utf-8"}
    assert paths(validate_pass_json(store_card(barcodes=[ean, qr])).errors) == [
        "$.barcodes[0].message"
    ]


# --- relevance ------------------------------------------------------------------------------


def test_more_than_ten_locations_is_an_error() -> None:
    locations = [{"latitude": 37.0 + i / 100, "longitude": -122.0} for i in range(11)]
    assert paths(validate_pass_json(store_card(locations=locations)).errors) == ["$.locations"]
    assert validate_pass_json(store_card(locations=locations[:10])).ok


def test_location_coordinates_are_required_and_in_range() -> None:
    locations = [
        {"latitude": 91, "longitude": 0},
        {"longitude": 10, "relevantText": "Store nearby"},
        {"latitude": 1, "longitude": "2"},
    ]
    report = validate_pass_json(store_card(locations=locations))
    assert paths(report.errors) == [
        "$.locations[0].latitude",
        "$.locations[1].latitude",
        "$.locations[2].longitude",
    ]


def test_beacon_needs_a_uuid_and_sixteen_bit_major_and_minor() -> None:
    beacons = [
        {"proximityUUID": "F8F589E9-C07E-58B0-AEAB-A36BE4D48FAC", "major": 1, "minor": 65535},
        {"proximityUUID": "not-a-uuid", "major": 65536},
        {"major": -1, "relevantText": "Hi"},
    ]
    report = validate_pass_json(store_card(beacons=beacons, locations=[]))
    assert paths(report.errors) == [
        "$.beacons[1].proximityUUID",
        "$.beacons[1].major",
        "$.beacons[2]",
        "$.beacons[2].major",
    ]


def test_beacon_minor_without_major_is_a_warning() -> None:
    beacons = [{"proximityUUID": "F8F589E9-C07E-58B0-AEAB-A36BE4D48FAC", "minor": 3}]
    report = validate_pass_json(store_card(beacons=beacons, locations=[]))
    assert report.ok and paths(report.warnings) == ["$.beacons[0].minor"]


def test_relevant_date_on_a_store_card_is_a_warning() -> None:
    report = validate_pass_json(store_card(relevantDate="2026-11-22T10:00Z", locations=[]))
    assert report.ok and paths(report.warnings) == ["$.relevantDate"]


def test_generic_pass_with_relevance_but_no_locations_is_a_warning() -> None:
    data = store_card(generic=store_card()["storeCard"], relevantDate="2026-11-22T10:00Z")
    del data["storeCard"]
    report = validate_pass_json(data)
    assert report.ok and paths(report.warnings) == ["$"]
    assert "locations" in report.warnings[0].message


# --- NFC ------------------------------------------------------------------------------------


def test_valid_nfc_dictionary_is_accepted() -> None:
    nfc = {"message": "member-1234", "encryptionPublicKey": p256_key()}
    assert validate_pass_json(store_card(nfc=nfc)).ok


def test_nfc_message_over_64_bytes_is_an_error_even_when_under_64_characters() -> None:
    key = p256_key()
    assert validate_pass_json(store_card(nfc={"message": "é" * 32, "encryptionPublicKey": key})).ok
    report = validate_pass_json(store_card(nfc={"message": "é" * 33, "encryptionPublicKey": key}))
    assert paths(report.errors) == ["$.nfc.message"] and "66 bytes" in report.errors[0].message


def test_nfc_needs_message_and_encryption_key() -> None:
    report = validate_pass_json(store_card(nfc={"requiresAuthentication": False}))
    assert paths(report.errors) == ["$.nfc.message", "$.nfc.encryptionPublicKey"]


def test_nfc_key_must_be_a_base64_p256_public_key() -> None:
    rsa_der = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    p384_der = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for key, reason in [
        ("not base64!", "base64"),
        (base64.b64encode(b"hello").decode(), "DER"),
        (base64.b64encode(rsa_der).decode(), "P-256"),
        (base64.b64encode(p384_der).decode(), "P-256"),
    ]:
        report = validate_pass_json(store_card(nfc={"message": "m", "encryptionPublicKey": key}))
        assert paths(report.errors) == ["$.nfc.encryptionPublicKey"], key
        assert reason in report.errors[0].message


def test_nfc_authentication_without_sharing_prohibited_is_a_warning() -> None:
    nfc = {"message": "m", "encryptionPublicKey": p256_key(), "requiresAuthentication": True}
    report = validate_pass_json(store_card(nfc=nfc))
    assert report.ok and paths(report.warnings) == ["$.nfc.requiresAuthentication"]
    assert validate_pass_json(store_card(nfc=nfc, sharingProhibited=True)).warnings == []


# --- semantics ------------------------------------------------------------------------------


def test_well_formed_semantic_tags_are_accepted() -> None:
    semantics = {
        "eventName": "The Hectic Glow",
        "eventStartDate": "2026-11-22T19:30-06:00",
        "duration": 7200,
        "silenceRequested": True,
        "performerNames": ["The Hectic Glow"],
        "seats": [{"seatSection": "A", "seatRow": "3", "seatNumber": "12"}],
        "totalPrice": {"amount": "42.50", "currencyCode": "USD"},
        "venueLocation": {"latitude": 37.33, "longitude": -122.03},
        "passengerName": {"givenName": "John", "familyName": "Appleseed"},
        "wifiAccess": [{"ssid": "Venue", "password": "secret"}],
        "eventType": "PKEventTypeLivePerformance",
    }
    report = validate_pass_json(store_card(semantics=semantics))
    assert report.errors == [] and report.warnings == [], messages(report.errors + report.warnings)


def test_semantic_tags_with_the_wrong_shape_are_errors() -> None:
    semantics = {
        "flightNumber": "815",
        "eventStartDate": "tonight",
        "seats": [{"seatNumber": 12}],
        "totalPrice": {"amount": 42.5, "currencyCode": "USD"},
        "venueLocation": {"latitude": 37.33},
        "wifiAccess": [{"ssid": "Venue"}],
        "artistIDs": "123",
        "eventType": "PKEventTypeOpera",
    }
    report = validate_pass_json(store_card(semantics=semantics))
    assert sorted(paths(report.errors)) == sorted(
        [
            "$.semantics.flightNumber",
            "$.semantics.eventStartDate",
            "$.semantics.seats[0].seatNumber",
            "$.semantics.totalPrice.amount",
            "$.semantics.venueLocation.longitude",
            "$.semantics.wifiAccess[0].password",
            "$.semantics.artistIDs",
            "$.semantics.eventType",
        ]
    )


def test_unknown_semantic_tag_is_a_warning() -> None:
    report = validate_pass_json(store_card(semantics={"eventNaem": "Typo"}))
    assert report.ok and paths(report.warnings) == ["$.semantics.eventNaem"]


def test_semantics_inside_a_field_are_checked_too() -> None:
    field = {"key": "k", "value": "v", "semantics": {"balance": {"amount": 5}}}
    report = validate_pass_json(with_fields("primaryFields", field))
    assert paths(report.errors) == ["$.storeCard.primaryFields[0].semantics.balance.amount"]


# --- whole packages -------------------------------------------------------------------------


def test_complete_package_is_valid() -> None:
    files = package(
        **{
            "strip@2x.png": make_png(750, 288),
            "en.lproj/pass.strings": encode_strings({"Points": "Points"}),
            "de.lproj/pass.strings": encode_strings({"Points": "Punkte"}),
            "de.lproj/logo@2x.png": make_png(300, 100),
        }
    )
    del files["logo@2x.png"]
    report = validate_package(files)
    assert report.errors == [] and report.warnings == [], messages(report.errors + report.warnings)


def test_package_without_pass_json_is_an_error() -> None:
    files = package()
    del files["pass.json"]
    assert paths(validate_package(files).errors) == ["pass.json"]


def test_pass_json_syntax_error_names_the_line() -> None:
    files = package()
    files["pass.json"] = b'{\n  "formatVersion": 1,\n  "description": "x"\n  "serialNumber": "1"\n}'
    report = validate_package(files)
    assert paths(report.errors) == ["pass.json"] and "line 4" in report.errors[0].message


def test_pass_json_with_nan_is_an_error() -> None:
    files = package()
    files["pass.json"] = files["pass.json"][:-1] + b', "maxDistance": NaN}'
    report = validate_package(files)
    assert paths(report.errors) == ["pass.json"] and "NaN" in report.errors[0].message


def test_repeated_json_key_is_a_warning() -> None:
    files = package()
    files["pass.json"] = files["pass.json"][:-1] + b', "serialNumber": "SN-2"}'
    report = validate_package(files)
    assert report.ok and paths(report.warnings) == ["pass.json"]


def test_pass_json_problems_are_found_inside_a_package() -> None:
    files = package(store_card(formatVersion=3))
    assert paths(validate_package(files).errors) == ["$.formatVersion"]


def test_malformed_pass_strings_names_the_file_and_line() -> None:
    files = package(**{"fr.lproj/pass.strings": b'"a" = "b";\n"c" = "d"\n'})
    report = validate_package(files)
    assert paths(report.errors) == ["fr.lproj/pass.strings"]
    assert "line 3" in report.errors[0].message


@pytest.mark.parametrize("lang", ["en", "fr", "zh-Hans", "pt_BR", "pt-BR", "es-419", "zh-Hant-TW"])
def test_language_folders_are_accepted(lang: str) -> None:
    files = package(**{f"{lang}.lproj/pass.strings": encode_strings({"a": "b"})})
    report = validate_package(files)
    assert report.errors == [] and report.warnings == []


@pytest.mark.parametrize("lang", ["english", "EN", "Base", "e", "en-us-x"])
def test_folder_not_named_after_a_language_is_a_warning(lang: str) -> None:
    files = package(**{f"{lang}.lproj/pass.strings": encode_strings({"a": "b"})})
    report = validate_package(files)
    assert report.ok and paths(report.warnings) == [f"{lang}.lproj"]


def test_localized_image_that_is_not_a_png_is_an_error() -> None:
    files = package(**{"ja.lproj/logo@2x.png": b"GIF89a...."})
    report = validate_package(files)
    assert paths(report.errors) == ["ja.lproj/logo@2x.png"] and "GIF" in report.errors[0].message


def test_image_the_style_does_not_show_is_a_warning_in_a_package() -> None:
    report = validate_package(package(**{"background@2x.png": make_png(360, 440)}))
    assert report.ok and paths(report.warnings) == ["background@2x.png"]


def test_unknown_files_are_warnings_with_a_hint_for_wrong_case() -> None:
    files = package(**{"Icon@2x.png": make_png(58, 58), "notes.txt": b"hi", ".DS_Store": b""})
    report = validate_package(files)
    assert report.ok
    assert sorted(paths(report.warnings)) == [".DS_Store", "Icon@2x.png", "notes.txt"]
    hint = next(w for w in report.warnings if w.path == "Icon@2x.png")
    assert "Did you mean icon@2x.png?" in hint.message


def test_unknown_file_inside_a_language_folder_is_a_warning() -> None:
    report = validate_package(package(**{"en.lproj/pass.string": b'"a" = "b";'}))
    assert report.ok and "Did you mean en.lproj/pass.strings?" in report.warnings[0].message


def test_manifest_and_signature_in_an_unsigned_package_are_warnings() -> None:
    report = validate_package(package(**{"manifest.json": b"{}", "signature": b"x"}))
    assert report.ok and sorted(paths(report.warnings)) == ["manifest.json", "signature"]


@pytest.mark.parametrize("name", ["../icon.png", "/etc/passwd", "en.lproj\\logo.png", "a//b.png"])
def test_file_names_that_escape_the_package_are_errors(name: str) -> None:
    report = validate_package(package(**{name: b"x"}))
    assert name in paths(report.errors)


def test_package_without_icon_is_an_error() -> None:
    files = package()
    del files["icon.png"], files["icon@2x.png"]
    assert paths(validate_package(files).errors) == ["icon.png"]


# --- personalization (rewards enrollment) ---------------------------------------------------


def personalizable(**personalization: Any) -> dict[str, bytes]:
    body = {
        "requiredPersonalizationFields": [
            "PKPassPersonalizationFieldName",
            "PKPassPersonalizationFieldEmailAddress",
        ],
        "description": "Sign up to earn points.",
        "termsAndConditions": "<a href='https://example.com/terms'>Terms</a>",
    }
    body.update(personalization)
    return package(
        store_card(nfc={"message": "member", "encryptionPublicKey": p256_key()}),
        **{
            "personalization.json": json.dumps(body).encode(),
            "personalizationLogo@2x.png": make_png(300, 80),
        },
    )


def test_personalizable_pass_is_valid() -> None:
    report = validate_package(personalizable())
    assert report.errors == [] and report.warnings == [], messages(report.errors + report.warnings)


def test_personalization_needs_a_personalization_logo() -> None:
    files = personalizable()
    del files["personalizationLogo@2x.png"]
    assert paths(validate_package(files).errors) == ["personalizationLogo.png"]


def test_personalization_needs_an_nfc_pass_with_a_web_service() -> None:
    files = personalizable()
    data = store_card()
    del data["webServiceURL"], data["authenticationToken"]
    files["pass.json"] = json.dumps(data).encode()
    assert paths(validate_package(files).errors) == ["$.nfc", "$.webServiceURL"]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (
            {"requiredPersonalizationFields": []},
            "personalization.json:$.requiredPersonalizationFields",
        ),
        (
            {"requiredPersonalizationFields": ["PKPassPersonalizationFieldBirthday"]},
            "personalization.json:$.requiredPersonalizationFields[0]",
        ),
        (
            {"requiredPersonalizationFields": None},
            "personalization.json:$.requiredPersonalizationFields",
        ),
        ({"description": 3}, "personalization.json:$.description"),
        ({"description": " "}, "personalization.json:$.description"),
        ({"termsAndConditions": ["x"]}, "personalization.json:$.termsAndConditions"),
    ],
)
def test_personalization_json_fields_are_checked(change: dict[str, Any], path: str) -> None:
    assert paths(validate_package(personalizable(**change)).errors) == [path]


def test_personalization_json_without_description_is_an_error() -> None:
    files = personalizable()
    body = json.loads(files["personalization.json"])
    del body["description"]
    files["personalization.json"] = json.dumps(body).encode()
    assert paths(validate_package(files).errors) == ["personalization.json:$.description"]


def test_personalization_logo_without_personalization_json_is_a_warning() -> None:
    report = validate_package(package(**{"personalizationLogo@2x.png": make_png(300, 80)}))
    assert report.ok and paths(report.warnings) == ["personalizationLogo@2x.png"]


# --- ensure_valid ---------------------------------------------------------------------------


def test_ensure_valid_returns_the_warnings_of_a_good_package() -> None:
    report = ensure_valid(package(**{"notes.txt": b"x"}))
    assert isinstance(report, Report) and paths(report.warnings) == ["notes.txt"]


def test_ensure_valid_raises_with_the_full_report() -> None:
    files = package(store_card(formatVersion=2, labelColor="blue"))
    del files["icon.png"], files["icon@2x.png"]
    with pytest.raises(PassInvalid) as caught:
        ensure_valid(files)
    report = caught.value.report
    assert sorted(paths(report.errors)) == ["$.formatVersion", "$.labelColor", "icon.png"]
    assert "3 error(s)" in str(caught.value)


def test_validation_does_not_modify_its_input() -> None:
    data = store_card(semantics={"totalPrice": {"amount": 5}})
    before = copy.deepcopy(data)
    validate_pass_json(data)
    assert data == before
