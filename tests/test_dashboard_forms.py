"""The dashboard's forms that create a pass and change its data, checked as the API checks."""

from __future__ import annotations

import html as html_text
import re
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from models import Pass, PendingPush, db
from tests.conftest import ADMIN_TOKEN, Admin
from tests.test_dashboard import PASS_TYPE, current, detail_url, pending_pushes, sign_in
from tests.test_webservice import register

NEW = "/admin/passes/new"


@pytest.fixture
def editor(make_app: Callable[..., Flask], app: Flask) -> FlaskClient:
    """A browser signed in to the dashboard, on a fresh app of the shared database."""
    client = make_app().test_client()
    assert sign_in(client, ADMIN_TOKEN).status_code == 302
    return client


def edit_url(serial: str) -> str:
    return detail_url(serial) + "/edit"


def form_of(client: FlaskClient, url: str) -> dict[str, str]:
    """The form's inputs as the page fills them in (what a browser would send unchanged)."""
    page = client.get(url)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    form = html[html.index('<form method="post" class="pass-form">') :]
    fields = {
        name: html_text.unescape(value)
        for name, value in re.findall(r'<input[^>]* name="([^"]+)"[^>]* value="([^"]*)"', form)
    }
    fields["json"] = ""
    return fields


def stored(serial: str, app: Flask) -> Pass | None:
    with app.app_context():
        return db.session.scalars(sa.select(Pass).filter_by(serial_number=serial)).one_or_none()


def test_the_new_pass_form_shows_the_template_fields(editor: FlaskClient) -> None:
    form = form_of(editor, NEW)
    assert form["template"] == "storecard"
    assert form["headerFields.0"] == "0"  # points
    assert form["secondaryFields.0"] == "Guest"
    assert "csrf_token" in form
    # Values that are localization keys say what Wallet shows for them, in the reader's
    # language where the template has it.
    assert form["auxiliaryFields.0"] == "level_green"
    assert "Wallet shows “Green”" in editor.get(NEW).get_data(as_text=True)
    french = editor.get(NEW, headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "Wallet shows “Vert”" in french


def test_creating_a_pass_from_the_form_stores_only_what_changed(
    editor: FlaskClient, admin: Admin
) -> None:
    form = form_of(editor, NEW)
    form.update(
        {
            "serialNumber": "form-1",
            "headerFields.0": "25",
            "secondaryFields.0": "Ada Lovelace",
            "json": '{"expirationDate": "2030-01-01T00:00:00Z"}',
        }
    )
    response = editor.post(NEW, data=form)
    assert response.status_code == 302
    assert response.headers["Location"] == detail_url("form-1")
    shown = admin.get(f"/api/passes/{PASS_TYPE}/form-1").get_json()
    assert shown["template"] == "storecard"
    header = shown["pass"]["storeCard"]["headerFields"]
    assert header[0]["value"] == 25 and header[0]["key"] == "points"
    assert shown["pass"]["storeCard"]["secondaryFields"][0]["value"] == "Ada Lovelace"
    assert shown["pass"]["expirationDate"] == "2030-01-01T00:00:00Z"
    # Rows nobody touched stay the template's, so editing the template still changes them.
    assert "primaryFields" not in shown["pass"]["storeCard"]
    assert "auxiliaryFields" not in shown["pass"]["storeCard"]
    assert "Created." in editor.get(detail_url("form-1")).get_data(as_text=True)


def test_changing_points_pushes_every_device_as_the_api_does(
    editor: FlaskClient, admin: Admin, client: FlaskClient
) -> None:
    created = admin.create_pass(serialNumber="form-2")
    register(client, created, device="d" * 32)
    with editor.application.app_context():
        db.session.execute(sa.delete(PendingPush))
        db.session.commit()
    tag_before, _ = current("form-2", editor.application)
    form = form_of(editor, edit_url("form-2"))
    form["headerFields.0"] = "120"
    response = editor.post(edit_url("form-2"), data=form)
    assert response.status_code == 302
    assert response.headers["Location"] == detail_url("form-2")
    assert current("form-2", editor.application)[0] > tag_before
    assert pending_pushes(editor.application) == 1
    shown = admin.get(f"/api/passes/{PASS_TYPE}/form-2").get_json()
    assert shown["pass"]["storeCard"]["headerFields"][0]["value"] == 120
    page = editor.get(detail_url("form-2")).get_data(as_text=True)
    assert "devices that hold it are being told" in page
    # The edit form now shows the new value.
    assert form_of(editor, edit_url("form-2"))["headerFields.0"] == "120"


def test_every_problem_is_shown_with_its_path_and_nothing_is_saved(
    editor: FlaskClient, admin: Admin
) -> None:
    admin.create_pass(serialNumber="form-3")
    tag_before, _ = current("form-3", editor.application)
    form = form_of(editor, edit_url("form-3"))
    form["primaryFields.0"] = "lots"  # the balance is a number
    form["secondaryFields.0"] = "Typed by hand"
    form["json"] = '{"backgroundColor": "red"'  # not JSON
    response = editor.post(edit_url("form-3"), data=form)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Nothing was saved: 2 problems" in html
    assert "$.storeCard.primaryFields[0].value" in html and "must be a number" in html
    assert "the JSON box is not valid JSON" in html
    # What was typed is kept.
    assert 'value="lots"' in html and 'value="Typed by hand"' in html
    assert "{&#34;backgroundColor&#34;: &#34;red&#34;</textarea>" in html
    assert current("form-3", editor.application)[0] == tag_before


def test_problems_of_the_form_and_of_the_pass_come_together(
    editor: FlaskClient, admin: Admin
) -> None:
    admin.create_pass(serialNumber="form-11")
    form = form_of(editor, edit_url("form-11"))
    form["headerFields.0"] = "ten"
    form["json"] = '{"backgroundColor": "red"}'
    response = editor.post(edit_url("form-11"), data=form)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Nothing was saved: 2 problems" in html
    assert "$.storeCard.headerFields[0].value" in html and "$.backgroundColor" in html


def test_the_pass_validation_of_the_api_applies_with_every_problem(
    editor: FlaskClient, admin: Admin
) -> None:
    admin.create_pass(serialNumber="form-4")
    tag_before, _ = current("form-4", editor.application)
    form = form_of(editor, edit_url("form-4"))
    form["json"] = '{"backgroundColor": "red", "expirationDate": "2030-01-01"}'
    api = admin.patch(
        f"/api/passes/{PASS_TYPE}/form-4",
        json={"pass": {"backgroundColor": "red", "expirationDate": "2030-01-01"}},
    )
    assert api.status_code == 422
    response = editor.post(edit_url("form-4"), data=form)
    assert response.status_code == 422
    html = html_text.unescape(response.get_data(as_text=True))
    for problem in api.get_json()["errors"]:
        assert problem["path"] in html and problem["message"] in html
    assert current("form-4", editor.application)[0] == tag_before


def test_request_level_problems_are_shown_at_their_pass_json_path(
    editor: FlaskClient, admin: Admin
) -> None:
    admin.create_pass(serialNumber="form-5")
    form = form_of(editor, NEW)
    form.update({"serialNumber": "form-5"})
    taken = editor.post(NEW, data=form)
    assert taken.status_code == 409
    assert "already exists" in taken.get_data(as_text=True)
    form.update({"serialNumber": "bad serial/", "json": '{"serialNumber": "x"}'})
    html = editor.post(NEW, data=form).get_data(as_text=True)
    assert "$.serialNumber" in html
    form.update({"serialNumber": "form-6", "json": '{"authenticationToken": "x"}'})
    refused = editor.post(NEW, data=form)
    assert refused.status_code == 400
    assert "$.authenticationToken" in refused.get_data(as_text=True)
    assert stored("form-6", editor.application) is None


def test_an_unchanged_form_changes_nothing(editor: FlaskClient, admin: Admin) -> None:
    admin.create_pass(serialNumber="form-7")
    tag_before, _ = current("form-7", editor.application)
    response = editor.post(edit_url("form-7"), data=form_of(editor, edit_url("form-7")))
    assert response.status_code == 302
    assert current("form-7", editor.application)[0] == tag_before
    assert "Nothing changed" in editor.get(edit_url("form-7")).get_data(as_text=True)


def test_the_forms_need_the_csrf_token(editor: FlaskClient, admin: Admin) -> None:
    admin.create_pass(serialNumber="form-8")
    tag_before, _ = current("form-8", editor.application)
    form = form_of(editor, edit_url("form-8"))
    form["headerFields.0"] = "5"
    for token in (None, "forged"):
        sent = {k: v for k, v in form.items() if k != "csrf_token"}
        if token:
            sent["csrf_token"] = token
        assert editor.post(edit_url("form-8"), data=sent).status_code == 400
        created = {**sent, "serialNumber": "form-9"}
        assert editor.post(NEW, data=created).status_code == 400
    assert current("form-8", editor.application)[0] == tag_before
    assert stored("form-9", editor.application) is None


def test_the_forms_require_signing_in(
    make_app: Callable[..., Flask], app: Flask, admin: Admin
) -> None:
    browser = make_app().test_client()
    admin.create_pass(serialNumber="form-10")
    for url in (NEW, edit_url("form-10")):
        response = browser.get(url)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/admin/login?next=")


def test_an_expired_pass_is_marked_on_its_page(editor: FlaskClient, admin: Admin) -> None:
    form = form_of(editor, NEW)
    form.update({"serialNumber": "form-12", "json": '{"expirationDate": "2020-01-01T00:00Z"}'})
    assert editor.post(NEW, data=form).status_code == 302
    assert 'badge">expired' in editor.get(detail_url("form-12")).get_data(as_text=True)
