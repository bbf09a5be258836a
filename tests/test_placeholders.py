"""Per-pass values in templates: {{serialNumber}} and {{data.PATH}} in pass.json strings."""

from __future__ import annotations

import pytest

from passes.building import PlaceholderError, fill_placeholders
from tests.conftest import Admin
from tests.pkpass_tools import pass_json

DATA = {
    "userInfo": {"memberId": "M-42", "points": 120, "vip": True, "tags": ["gold", "early"]},
    "storeCard": {"secondaryFields": [{"key": "member", "value": "Ada"}]},
}


def fill(value: object, data: dict[str, object] | None = DATA) -> object:
    return fill_placeholders(value, "SERIAL-1", data)


def test_serial_number_and_data_paths_are_filled_in_every_string_value() -> None:
    template = {
        "barcodes": [
            {"message": "{{serialNumber}}", "altText": "No. {{ data.userInfo.memberId }}"}
        ],
        "logoText": "{{data.storeCard.secondaryFields.0.value}}'s card",
        "formatVersion": 1,
    }
    assert fill(template) == {
        "barcodes": [{"message": "SERIAL-1", "altText": "No. M-42"}],
        "logoText": "Ada's card",
        "formatVersion": 1,
    }


def test_values_that_are_not_strings_are_put_in_as_json_text() -> None:
    assert fill("{{data.userInfo.points}} points, vip {{data.userInfo.vip}}") == (
        "120 points, vip true"
    )
    assert fill("{{data.userInfo.tags}}") == '["gold", "early"]'


def test_keys_are_not_filled_and_an_escaped_brace_pair_is_literal() -> None:
    assert fill({"{{serialNumber}}": r"\{{serialNumber}}"}) == {
        "{{serialNumber}}": "{{serialNumber}}"
    }


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{{data.userInfo.missing}}", ["{{data.userInfo.missing}}", "'missing'"]),
        ("{{data.userInfo.tags.5}}", ["{{data.userInfo.tags.5}}", "'5'"]),
        ("{{data.userInfo.memberId.deeper}}", ["'deeper'"]),
        ("{{serial}}", ["{{serial}}", "names nothing"]),
        ("{{data}}", ["{{data}}", "names nothing"]),
        ("open {{serialNumber", ["starts no placeholder"]),
    ],
)
def test_a_placeholder_that_cannot_be_filled_is_named_with_its_path(
    text: str, words: list[str]
) -> None:
    with pytest.raises(PlaceholderError) as raised:
        fill({"barcodes": [{"message": text}]})
    assert raised.value.path == "$.barcodes[0].message"
    for word in words:
        assert word in raised.value.message


def test_without_data_only_the_form_is_checked() -> None:
    assert fill("{{data.anything}} {{serialNumber}}", None) == "{{data.anything}} SERIAL-1"
    with pytest.raises(PlaceholderError):
        fill("{{nothing}}", None)


def test_the_sample_store_card_gives_each_pass_its_own_barcode(admin: Admin) -> None:
    messages = []
    for serial in ("member-1", "member-2"):
        admin.create_pass(serialNumber=serial)
        pkpass = admin.get(f"/api/passes/pass.com.example.test/{serial}/pkpass").data
        barcode = pass_json(pkpass)["barcodes"][0]
        assert barcode["message"] == barcode["altText"] == serial
        messages.append(barcode["message"])
    assert messages[0] != messages[1]


def test_data_of_the_pass_is_never_read_as_a_template(admin: Admin) -> None:
    response = admin.post(
        "/api/passes",
        json={
            "template": "storecard",
            "serialNumber": "lit",
            "pass": {"logoText": "{{serialNumber}}"},
        },
    )
    assert response.status_code == 201, response.get_json()
    pkpass = admin.get("/api/passes/pass.com.example.test/lit/pkpass").data
    assert pass_json(pkpass)["logoText"] == "{{serialNumber}}"
