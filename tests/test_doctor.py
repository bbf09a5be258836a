"""`flask passes doctor`: the first broken link between this server and the phones."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from models import Pass, db, utcnow
from passes import pushing
from tests.apns_server import FakeApns, Reply
from tests.delivery_phones import create_pass, phone
from tests.pushes import patch


def doctor(app: Flask, serial: str, *extra: str) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["passes", "doctor", serial, *extra])
    return result.exit_code, result.output


def test_every_device_current_exits_0(push_app: Flask, apns: FakeApns) -> None:
    create_pass(push_app, "healthy")
    device = phone(push_app, 1)
    device.register("healthy")
    patch(push_app, "healthy")
    with push_app.app_context():
        pushing.drain_now()
    device.woken()
    status, output = doctor(push_app, "healthy")
    assert status == 0, output
    assert "ok      webServiceURL: https://passes.example.test/wallet" in output
    assert "ok      devices: 1 registered: 1 current" in output
    assert "every link holds" in output


def test_no_device_registered_is_the_first_broken_link(push_app: Flask) -> None:
    create_pass(push_app, "lonely")
    status, output = doctor(push_app, "lonely")
    assert status == 1
    assert "BROKEN  devices: no device has registered this pass" in output
    assert output.rstrip().endswith("first broken link: devices")


def test_a_refused_push_names_the_device_apns_reason_and_what_to_do(
    push_app: Flask, apns: FakeApns
) -> None:
    create_pass(push_app, "refused")
    fine, refused = phone(push_app, 2), phone(push_app, 3)
    fine.register("refused")
    refused.register("refused")
    apns.script(refused.push_token, Reply(400, "TopicDisallowed"))
    patch(push_app, "refused")
    with push_app.app_context():
        pushing.drain_now()
    fine.woken()
    status, output = doctor(push_app, "refused")
    assert status == 1
    assert "devices: 2 registered: 1 current, 1 failing" in output
    assert "BROKEN  device phone-0003: APNs refused the last push" in output
    assert "400 TopicDisallowed" in output
    assert "use the Pass Type ID certificate made for it" in output
    assert "phone-0002" not in output  # current devices are counted, not described
    assert output.rstrip().endswith("first broken link: device phone-0003")


def test_a_push_nobody_sends_says_push_mode_is_off(push_app: Flask) -> None:
    create_pass(push_app, "queued")
    phone(push_app, 4).register("queued")
    patch(push_app, "queued")
    status, output = doctor(push_app, "queued")
    assert status == 1
    assert "device phone-0004: a push is queued" in output
    assert "PUSH_MODE is off" in output


def test_a_woken_phone_that_has_not_fetched_is_named_with_its_apns_id(
    push_app: Flask, apns: FakeApns
) -> None:
    create_pass(push_app, "sleepy")
    phone(push_app, 5).register("sleepy")
    patch(push_app, "sleepy")
    with push_app.app_context():
        pushing.drain_now()
    status, output = doctor(push_app, "sleepy")
    assert status == 1
    assert "APNs accepted the push" in output
    assert "(apns-id " in output
    assert "it has not asked since" in output


def test_an_http_public_url_breaks_the_first_link(
    app: Flask, make_app: Callable[..., Flask]
) -> None:
    create_pass(app, "insecure")
    # A deployment whose PUBLIC_URL went wrong after the pass was issued.
    plain = make_app(PUBLIC_URL="http://passes.example.test")
    status, output = doctor(plain, "insecure")
    assert status == 1
    assert "BROKEN  webServiceURL: http://passes.example.test/wallet: " in output
    assert "Wallet requires https" in output
    assert "first broken link: webServiceURL" in output


def test_a_pass_of_another_type_than_the_certificate_is_named(app: Flask) -> None:
    with app.app_context():
        now = utcnow()
        db.session.add(
            Pass(
                pass_type_identifier="pass.com.example.other",
                serial_number="stranger",
                template="storecard",
                data={},
                update_tag=0,
                updated_at=now,
            )
        )
        db.session.commit()
    status, output = doctor(app, "stranger")
    assert status == 1
    assert "BROKEN  certificate: the certificates are for pass.com.example.test" in output
    assert "first broken link: certificate" in output


def test_a_server_without_certificate_names_it_first(
    app: Flask, make_app: Callable[..., Flask]
) -> None:
    create_pass(app, "uncertified")
    unsigned = make_app(PASS_CERTIFICATE=None, WWDR_CERTIFICATE=None)
    status, output = doctor(unsigned, "uncertified")
    assert status == 1
    assert "ok      webServiceURL: https://passes.example.test/wallet" in output
    assert "BROKEN  certificate: no pass certificate is configured" in output
    assert "first broken link: certificate" in output


def test_wallet_log_messages_about_the_pass_are_shown(push_app: Flask) -> None:
    create_pass(push_app, "logged")
    device = phone(push_app, 6)
    device.register("logged")
    message = (
        "Get pass task (pass type pass.com.example.test, serial number logged, "
        "if-modified-since (null); with web service url https://passes.example.test/wallet) "
        "encountered error: Unexpected response code 401"
    )
    other = message.replace("serial number logged,", "serial number logged-2,")
    device.client.post("/wallet/v1/log", json={"logs": [message, other]})
    status, output = doctor(push_app, "logged")
    # The device holds the current version (it has not changed since it registered), so the
    # exit status is 0; the log line still shows as a broken link.
    assert status == 0
    assert "BROKEN  Wallet's log: Wallet reported 1 problem(s)" in output
    assert "Unexpected response code 401" in output


def test_an_unknown_serial_is_an_error(app: Flask) -> None:
    status, output = doctor(app, "nobody")
    assert status == 1
    assert "no pass has serial number 'nobody'" in output
