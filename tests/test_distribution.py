"""The public pass page and its download link."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from models import Pass, db
from passes import distribution, links, store
from passes.distribution import format_currency, format_date, format_number
from tests.conftest import Admin
from tests.pkpass_tools import openssl_verify, pass_json, unzip

MEMBER = {"storeCard": {"secondaryFields": [{"key": "member", "label": "MEMBER", "value": "Ada"}]}}


@pytest.fixture
def public_app(make_app: Callable[..., Flask], app: Flask) -> Flask:
    """A fresh app (its own session cookie settings), on the shared database."""
    built = make_app()
    return built


@pytest.fixture
def web(public_app: Flask) -> FlaskClient:
    return public_app.test_client()


def link(app: Flask, serial: str, expires_at: datetime | None = None) -> str:
    with app.app_context():
        pass_ = db.session.query(Pass).filter_by(serial_number=serial).one()
        return "/p/" + links.download_token(pass_, expires_at)


def test_page_shows_the_pass_front_localized_and_formatted(
    admin: Admin, web: FlaskClient, public_app: Flask
) -> None:
    admin.create_pass(serialNumber="card-1", **{"pass": MEMBER})
    admin.patch(
        "/api/passes/pass.com.example.test/card-1",
        json={"pass": {"storeCard": {"primaryFields": [balance(1234.5)]}}},
    )
    response = web.get(link(public_app, "card-1"))
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "Ada" in html
    assert "$1,234.50" in html
    assert "Green" in html  # "level_green" through en.lproj/pass.strings
    assert "Member" in html and "Bean There" in html
    assert "rgb(30, 120, 80)" in html  # the background colour
    assert "<svg" in html and 'class="qr"' in html  # the QR code, drawn server-side
    assert "data:image/png;base64," in html  # logo and strip
    assert 'href="' + link(public_app, "card-1") + '/pass.pkpass"' in html
    assert "Content-Security-Policy" in response.headers
    assert response.headers["Referrer-Policy"] == "no-referrer"


def balance(amount: float) -> dict[str, Any]:
    return {"key": "balance", "label": "BALANCE", "value": amount, "currencyCode": "USD"}


def test_page_never_contains_the_authentication_token(
    admin: Admin, web: FlaskClient, public_app: Flask
) -> None:
    admin.create_pass(serialNumber="card-2")
    token = pass_json(admin.get("/api/passes/pass.com.example.test/card-2/pkpass").data)[
        "authenticationToken"
    ]
    html = web.get(link(public_app, "card-2")).get_data(as_text=True)
    assert token not in html
    assert "authenticationToken" not in html


def test_page_follows_the_browser_language(
    admin: Admin, web: FlaskClient, public_app: Flask
) -> None:
    admin.create_pass(serialNumber="card-3")
    html = web.get(
        link(public_app, "card-3"), headers={"Accept-Language": "fr-CA,fr;q=0.9"}
    ).get_data(as_text=True)
    assert '<html lang="fr">' in html
    assert "Solde" in html and "Vert" in html


def test_download_is_a_signed_pkpass(
    admin: Admin,
    web: FlaskClient,
    public_app: Flask,
    chain_files: dict[str, Path],
    tmp_path: Path,
) -> None:
    admin.create_pass(serialNumber="card-4", **{"pass": MEMBER})
    response = web.get(link(public_app, "card-4") + "/pass.pkpass")
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.apple.pkpass"
    assert response.headers["Content-Disposition"] == 'attachment; filename="card-4.pkpass"'
    files = unzip(response.data)
    assert pass_json(response.data)["serialNumber"] == "card-4"
    assert openssl_verify(files, chain_files["root"], tmp_path).returncode == 0


@pytest.mark.parametrize("suffix", ["", "/pass.pkpass"])
def test_a_tampered_link_is_a_404_page(
    admin: Admin, web: FlaskClient, public_app: Flask, suffix: str
) -> None:
    admin.create_pass(serialNumber="card-5")
    good = link(public_app, "card-5")
    # Change one character of the payload: the signature no longer matches.
    payload_char = good[4]
    tampered = good[:4] + ("A" if payload_char != "A" else "B") + good[5:]
    response = web.get(tampered + suffix)
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "couldn't find this pass" in response.get_data(as_text=True)
    assert web.get("/p/not-a-token" + suffix).status_code == 404


def test_an_expired_link_is_a_404_page_and_a_live_one_works(
    admin: Admin, web: FlaskClient, public_app: Flask
) -> None:
    admin.create_pass(serialNumber="card-6")
    past = datetime.now(UTC) - timedelta(minutes=1)
    expired = web.get(link(public_app, "card-6", expires_at=past))
    assert expired.status_code == 404
    assert "expired" in expired.get_data(as_text=True)
    assert web.get(link(public_app, "card-6", expires_at=past) + "/pass.pkpass").status_code == 404
    future = datetime.now(UTC) + timedelta(days=1)
    assert web.get(link(public_app, "card-6", expires_at=future)).status_code == 200


def test_a_deleted_pass_is_a_404_page(admin: Admin, web: FlaskClient, public_app: Flask) -> None:
    admin.create_pass(serialNumber="card-7")
    url = link(public_app, "card-7")
    with public_app.app_context():
        db.session.delete(store.get_pass("pass.com.example.test", "card-7"))
        db.session.commit()
    response = web.get(url)
    assert response.status_code == 404
    assert "no longer exists" in response.get_data(as_text=True)


def test_a_voided_pass_says_so(admin: Admin, web: FlaskClient, public_app: Flask) -> None:
    admin.create_pass(serialNumber="card-8")
    admin.post("/api/passes/pass.com.example.test/card-8/void")
    assert "has been voided" in web.get(link(public_app, "card-8")).get_data(as_text=True)


def test_colours_other_than_rgb_never_reach_the_css() -> None:
    assert distribution.css_color("rgb(1,2, 3)", "x") == "rgb(1, 2, 3)"
    assert distribution.css_color("rgb(999, 0, 0)", "x") == "rgb(255, 0, 0)"
    assert distribution.css_color("red; background: url(//evil)", "x") == "x"
    assert distribution.css_color(None, "x") == "x"


def test_values_are_formatted_as_wallet_does_in_english() -> None:
    assert format_currency(12.5, "USD") == "$12.50"
    assert format_currency(-3, "EUR") == "-€3.00"
    assert format_currency(1500, "JPY") == "¥1,500"
    assert format_currency(7.25, "CHF") == "CHF 7.25"
    assert format_number(0) == "0"
    assert format_number(2.0) == "2"
    assert format_number(1234.5678, "PKNumberStyleDecimal") == "1,234.568"
    assert format_number(0.25, "PKNumberStylePercent") == "25%"
    assert format_number(1234, "PKNumberStyleScientific") == "1.234E3"
    when = datetime.fromisoformat("2026-03-07T18:05:00-05:00")
    assert format_date(when, "PKDateStyleMedium", "PKDateStyleShort") == "Mar 7, 2026 at 6:05 PM"
    assert format_date(when, "PKDateStyleShort", "PKDateStyleNone") == "3/7/26"


def test_non_qr_barcodes_show_their_text(admin: Admin, web: FlaskClient, public_app: Flask) -> None:
    code = {"format": "PKBarcodeFormatPDF417", "message": "M-42", "messageEncoding": "utf-8"}
    admin.create_pass(serialNumber="card-9", **{"pass": {"barcodes": [code]}})
    html = web.get(link(public_app, "card-9")).get_data(as_text=True)
    assert 'class="qr"' not in html
    assert re.search(r"PDF417</span>\s*M-42", html)


@pytest.mark.parametrize(
    ("style", "extra"),
    [
        ("boardingPass", {"transitType": "PKTransitTypeAir"}),
        ("eventTicket", {}),
        ("generic", {}),
        ("coupon", {}),
    ],
)
def test_every_pass_style_renders(
    admin: Admin, web: FlaskClient, public_app: Flask, style: str, extra: dict[str, Any]
) -> None:
    fields = {
        "primaryFields": [
            {"key": "from", "label": "FROM", "value": "SFO"},
            {"key": "to", "label": "TO", "value": "JFK"},
        ],
        "auxiliaryFields": [
            {
                "key": "when",
                "label": "WHEN",
                "value": "2030-05-01T09:30:00-07:00",
                "dateStyle": "PKDateStyleMedium",
                "timeStyle": "PKDateStyleShort",
            }
        ],
        **extra,
    }
    serial = f"style-{style}"
    admin.create_pass(serialNumber=serial, **{"pass": {"storeCard": None, style: fields}})
    html = web.get(link(public_app, serial)).get_data(as_text=True)
    assert f'class="pass pass-{style}"' in html
    assert "SFO" in html and "JFK" in html
    assert "May 1, 2030 at 9:30 AM" in html


def test_an_expired_pass_says_so(admin: Admin, web: FlaskClient, public_app: Flask) -> None:
    admin.create_pass(serialNumber="old-1", **{"pass": {"expirationDate": "2020-01-01T00:00:00Z"}})
    assert "has expired" in web.get(link(public_app, "old-1")).get_data(as_text=True)


def test_a_qr_message_too_long_for_any_qr_code_is_shown_as_text() -> None:
    barcode = distribution._barcode(
        {"barcodes": [{"format": "PKBarcodeFormatQR", "message": "x" * 5000}]}
    )
    assert barcode is not None and barcode.svg is None and barcode.text == "x" * 5000


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"voided": True}, "has been voided"),
        ({"expirationDate": "2020-01-01T00:00:00Z"}, "has expired"),
        ({"expirationDate": "2020-01-01T09:00+08:00"}, "has expired"),
    ],
)
def test_a_pass_no_longer_valid_offers_no_download_and_its_file_is_gone(
    admin: Admin, web: FlaskClient, public_app: Flask, change: dict[str, Any], says: str
) -> None:
    admin.create_pass(serialNumber="gone-1", **{"pass": change})
    page = web.get(link(public_app, "gone-1"))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f"This pass {says}" in html
    assert "Add to Apple Wallet" not in html and "pass.pkpass" not in html
    download = web.get(link(public_app, "gone-1") + "/pass.pkpass")
    assert download.status_code == 410
    assert download.mimetype == "text/html"
    assert f"This pass {says}" in download.get_data(as_text=True)
    assert download.headers["Cache-Control"] == "private, no-cache"
    # The admin API and devices still get the file: Wallet must learn it is no longer valid.
    assert admin.get("/api/passes/pass.com.example.test/gone-1/pkpass").status_code == 200


def test_a_pass_expiring_later_or_with_an_unreadable_date_is_still_offered(
    admin: Admin, web: FlaskClient, public_app: Flask
) -> None:
    admin.create_pass(serialNumber="later-1", **{"pass": {"expirationDate": "2999-01-01T00:00Z"}})
    assert "Add to Apple Wallet" in web.get(link(public_app, "later-1")).get_data(as_text=True)
    assert web.get(link(public_app, "later-1") + "/pass.pkpass").status_code == 200
    # What validation would not read as a W3C date does not expire a pass (stored before the
    # rule, or through a template): the same parser decides for the page and for Wallet.
    assert distribution.no_longer_valid({"expirationDate": "2020-01-01"}) is None
    assert distribution.no_longer_valid({"expirationDate": 5}) is None
    assert distribution.no_longer_valid({"voided": "yes"}) is None


def test_a_pass_expires_the_moment_its_date_passes(
    admin: Admin, web: FlaskClient, public_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin.create_pass(serialNumber="soon-1", **{"pass": {"expirationDate": "2031-06-01T12:00Z"}})
    url = link(public_app, "soon-1", expires_at=datetime(2032, 1, 1, tzinfo=UTC))
    just_before = datetime(2031, 6, 1, 11, 59, 59, tzinfo=UTC)
    for now, status in [(just_before, 200), (just_before + timedelta(seconds=1), 410)]:
        monkeypatch.setattr(distribution, "utcnow", lambda now=now: now)
        assert web.get(url + "/pass.pkpass").status_code == status
