"""The pass page and the dashboard in a real (headless) Chromium, against a real server.

Needs Debian's `chromium` and `chromium-driver` packages; without /usr/bin/chromium these
tests are skipped. Every wait has a deadline: a broken page fails in seconds, not minutes.
"""

from __future__ import annotations

import base64
import shutil
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.wait import WebDriverWait
from werkzeug.serving import BaseWSGIServer, make_server

from models import DeviceLogEntry, Pass, PushOutcomeCount, db
from passes import links
from tests.apple_chain import FakeAppleChain, issue_pass_certificate
from tests.conftest import ADMIN_TOKEN, Admin
from tests.pkpass_tools import openssl_verify, pass_json, unzip
from tests.test_webhooks import failing_and_delivered
from tests.test_webservice import register

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DEADLINE = 10.0  # seconds for any one thing to happen in the browser
SCREENSHOT = Path("/tmp/pass_page.png")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Chromium is not installed: apt-get install chromium chromium-driver",
)


@pytest.fixture(scope="module")
def server(make_app: Callable[..., Flask], app: Flask) -> Iterator[tuple[Flask, str]]:
    """The app with the public pages and dashboard, served over HTTP on a free port."""
    served = make_app()
    http, thread, base = _serve(served)
    yield served, base
    _stop(http, thread)


def _serve(served: Flask) -> tuple[BaseWSGIServer, threading.Thread, str]:
    """Serve `served` over HTTP on a free port, in a thread."""
    http = make_server("127.0.0.1", 0, served, threaded=True)
    base = f"http://127.0.0.1:{http.server_port}"
    # Links must point at this server, and its session cookie must travel over plain HTTP.
    served.config.update(PUBLIC_URL=base, SESSION_COOKIE_SECURE=False)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    return http, thread, base


def _stop(http: BaseWSGIServer, thread: threading.Thread) -> None:
    http.shutdown()
    http.server_close()
    thread.join(timeout=DEADLINE)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def chrome(tmp_path_factory: pytest.TempPathFactory, downloads: Path) -> Iterator[WebDriver]:
    """A phone-sized headless Chromium with a fresh profile."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=390,844",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    # Chromium keeps desktop windows at least 500 pixels wide; emulating the phone's screen
    # is what makes the page really 390 CSS pixels wide (and honour its viewport meta tag).
    options.add_experimental_option(
        "mobileEmulation", {"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 2}}
    )
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(DEADLINE)
    # Headless Chromium refuses downloads unless told where to put them.
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    yield driver
    driver.quit()


def wait(driver: WebDriver) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, DEADLINE)


def wait_for_file(path: Path) -> bytes:
    """The file once Chromium has finished writing it (it writes to a .crdownload first)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if path.exists() and not path.with_name(path.name + ".crdownload").exists():
            return path.read_bytes()
        time.sleep(0.05)  # polling the file system: there is no event to wait on
    raise AssertionError(f"{path.name} was not downloaded within {DEADLINE} seconds")


def public_link(served: Flask, serial: str) -> str:
    with served.app_context():
        pass_ = db.session.query(Pass).filter_by(serial_number=serial).one()
        return links.download_url(pass_)


def test_pass_page_shows_the_pass_on_a_phone_and_adds_it_to_wallet(
    server: tuple[Flask, str],
    chrome: WebDriver,
    admin: Admin,
    downloads: Path,
    chain_files: dict[str, Path],
    tmp_path: Path,
) -> None:
    served, _ = server
    member = {"key": "member", "label": "MEMBER", "value": "Grace Hopper"}
    admin.create_pass(
        serialNumber="browser-1", **{"pass": {"storeCard": {"secondaryFields": [member]}}}
    )
    chrome.get(public_link(served, "browser-1"))

    card = wait(chrome).until(seen.visibility_of_element_located((By.CSS_SELECTOR, ".pass")))
    assert "Grace Hopper" in card.text
    assert "Bean There" in card.text and "Green" in card.text
    code = chrome.find_element(By.CSS_SELECTOR, ".pass-code svg")
    assert code.is_displayed() and code.size["width"] >= 120
    logo = chrome.find_element(By.CSS_SELECTOR, "img.pass-logo")
    assert chrome.execute_script("return arguments[0].naturalWidth", logo) > 0
    # Nothing wider than the phone: no sideways scrolling.
    assert chrome.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    assert chrome.execute_script("return window.innerWidth") == 390
    chrome.save_screenshot(str(SCREENSHOT))

    button = chrome.find_element(By.LINK_TEXT, "Add to Apple Wallet")
    href = button.get_attribute("href")
    with urllib.request.urlopen(href, timeout=DEADLINE) as response:
        assert response.headers["Content-Type"] == "application/vnd.apple.pkpass"
        fetched = response.read()
    assert openssl_verify(unzip(fetched), chain_files["root"], tmp_path).returncode == 0

    shutil.rmtree(downloads, ignore_errors=True)
    downloads.mkdir()
    button.click()
    saved = wait_for_file(downloads / "browser-1.pkpass")
    assert pass_json(saved)["storeCard"]["secondaryFields"][0]["value"] == "Grace Hopper"
    assert openssl_verify(unzip(saved), chain_files["root"], tmp_path / "click").returncode == 0


def test_a_tampered_link_shows_a_not_found_page(
    server: tuple[Flask, str], chrome: WebDriver, admin: Admin
) -> None:
    served, _ = server
    admin.create_pass(serialNumber="browser-2")
    chrome.get(public_link(served, "browser-2") + "x")
    heading = wait(chrome).until(seen.visibility_of_element_located((By.TAG_NAME, "h1")))
    assert "couldn't find this pass" in heading.text


def test_admin_signs_in_finds_a_pass_and_voids_it(
    server: tuple[Flask, str], chrome: WebDriver, admin: Admin
) -> None:
    _, base = server
    admin.create_pass(serialNumber="browser-void-1")
    admin.create_pass(serialNumber="browser-keep-2")
    chrome.delete_all_cookies()

    chrome.get(base + "/admin/")
    wait(chrome).until(seen.url_contains("/admin/login"))
    chrome.find_element(By.NAME, "token").send_keys(ADMIN_TOKEN)
    chrome.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    search = wait(chrome).until(seen.visibility_of_element_located((By.NAME, "q")))

    search.send_keys("void")
    search.submit()
    wait(chrome).until(seen.url_contains("q=void"))
    table = chrome.find_element(By.TAG_NAME, "table").text
    assert "browser-void-1" in table and "browser-keep-2" not in table

    chrome.find_element(By.LINK_TEXT, "browser-void-1").click()
    wait(chrome).until(seen.visibility_of_element_located((By.CSS_SELECTOR, ".pass")))
    chrome.find_element(By.NAME, "confirm").click()
    chrome.find_element(By.XPATH, "//button[normalize-space()='Void']").click()
    flash = wait(chrome).until(seen.visibility_of_element_located((By.CSS_SELECTOR, ".flash")))
    assert "voided" in flash.text

    shown = admin.get("/api/passes/pass.com.example.test/browser-void-1").get_json()
    assert shown["pass"]["voided"] is True
    assert "voided" not in str(
        admin.get("/api/passes/pass.com.example.test/browser-keep-2").get_json()["pass"]
    )


def test_the_webhooks_page_fits_a_phone(
    server: tuple[Flask, str],
    chrome: WebDriver,
) -> None:
    served, base = server
    failing_and_delivered(served)  # one delivered, one failing
    chrome.delete_all_cookies()
    chrome.get(base + "/admin/login")
    chrome.find_element(By.NAME, "token").send_keys(ADMIN_TOKEN)
    chrome.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(chrome).until(seen.visibility_of_element_located((By.NAME, "q")))
    chrome.get(base + "/admin/webhooks")
    table = wait(chrome).until(seen.visibility_of_element_located((By.TAG_NAME, "table")))
    assert "device.removed" in table.text and "failing" in table.text
    assert chrome.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    chrome.save_screenshot("/tmp/webhooks_page.png")


# --- Every page on a phone --------------------------------------------------------------------

PHONE_WIDTH = 390
SCREENSHOTS = Path("/tmp/pass-server-pages")  # look at them: tests cannot judge looks


def sign_in(chrome: WebDriver, base: str) -> None:
    chrome.delete_all_cookies()
    chrome.get(base + "/admin/login")
    chrome.find_element(By.NAME, "token").send_keys(ADMIN_TOKEN)
    chrome.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(chrome).until(seen.visibility_of_element_located((By.NAME, "q")))


def visible(chrome: WebDriver, css: str) -> WebElement:
    return wait(chrome).until(seen.visibility_of_element_located((By.CSS_SELECTOR, css)))


def fits_the_phone(chrome: WebDriver, name: str) -> None:
    """Nothing wider than the phone (tables scroll in their own box), and a screenshot of the
    whole page to look at."""
    assert chrome.execute_script("return window.innerWidth") == PHONE_WIDTH
    width = chrome.execute_script("return document.scrollingElement.scrollWidth")
    assert width <= PHONE_WIDTH, f"{name} is {width} px wide"
    SCREENSHOTS.mkdir(exist_ok=True)
    height = chrome.execute_script("return document.scrollingElement.scrollHeight")
    shot = chrome.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": PHONE_WIDTH, "height": height, "scale": 1},
        },
    )
    (SCREENSHOTS / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


def seed_wide_content(served: Flask, client: FlaskClient, admin: Admin) -> str:
    """What makes pages wide: long serial numbers, devices, log lines, push outcomes."""
    serial = "member-" + "7" * 57
    created = admin.create_pass(serialNumber=serial)
    for n in range(3):
        register(client, created, device=f"{n:x}" * 32)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with served.app_context():
        db.session.add(DeviceLogEntry(message="Web service error for " + "pass.com.example" * 12))
        for outcome, count in [("sent", 12345), ("removed", 2), ("retry_later", 3)]:
            db.session.add(PushOutcomeCount(hour=hour, outcome=outcome, count=count))
        db.session.commit()
    return serial


def test_every_page_fits_a_phone(
    server: tuple[Flask, str], chrome: WebDriver, admin: Admin, client: FlaskClient
) -> None:
    served, base = server
    serial = seed_wide_content(served, client, admin)
    detail = f"{base}/admin/passes/pass.com.example.test/{serial}"
    sign_in(chrome, base)
    pages = {
        "passes": base + "/admin/",
        "pass": detail,
        "edit": detail + "/edit",
        "new": base + "/admin/passes/new",
        "logs": base + "/admin/logs",
        "pushes": base + "/admin/pushes",
        "webhooks": base + "/admin/webhooks",
        "templates": base + "/admin/templates",
        "certificates": base + "/admin/certificates",
        "not-found": base + "/admin/no-such-page",
        "home": base + "/",
    }
    for name, url in pages.items():
        chrome.get(url)
        wait(chrome).until(seen.visibility_of_element_located((By.TAG_NAME, "h1")))
        fits_the_phone(chrome, name)
    chrome.get(pages["not-found"])
    assert chrome.find_element(By.TAG_NAME, "h1").text == "Not Found"
    chrome.get(pages["home"])
    chrome.find_element(By.LINK_TEXT, "Dashboard").click()
    wait(chrome).until(seen.visibility_of_element_located((By.NAME, "q")))
    chrome.delete_all_cookies()
    chrome.get(base + "/admin/login")
    fits_the_phone(chrome, "login")


def test_the_certificates_page_of_several_types_fits_a_phone(
    make_app: Callable[..., Flask], chrome: WebDriver, chain: FakeAppleChain, tmp_path: Path
) -> None:
    # Two more: a type with a long identifier, and the first one renewed.
    long_type = "pass.com.example-agency.longbrandname.coupons2026"
    settings: dict[str, str] = {}
    for number, issued in (
        (2, issue_pass_certificate(chain.wwdr, long_type)),
        (3, issue_pass_certificate(chain.wwdr, chain.pass_type_identifier)),
    ):
        path = tmp_path / f"pass-{number}.pem"
        path.write_bytes(issued.key_pem() + issued.cert_pem())
        settings[f"PASS_CERTIFICATE_{number}"] = str(path)
    http, thread, base = _serve(make_app(**settings))
    try:
        sign_in(chrome, base)
        chrome.get(base + "/admin/certificates")
        table = visible(chrome, "table")
        assert long_type in table.text and "PASS_CERTIFICATE_3" in table.text
        fits_the_phone(chrome, "certificates-several")
    finally:
        _stop(http, thread)


def test_admin_adds_points_from_a_phone_and_sees_problems_kept_with_what_was_typed(
    server: tuple[Flask, str], chrome: WebDriver, admin: Admin
) -> None:
    _, base = server
    admin.create_pass(serialNumber="browser-points")
    sign_in(chrome, base)
    chrome.get(f"{base}/admin/passes/pass.com.example.test/browser-points")
    chrome.find_element(By.LINK_TEXT, "Change data").click()
    points = wait(chrome).until(seen.visibility_of_element_located((By.ID, "headerFields.0")))
    assert points.get_attribute("value") == "0"

    points.clear()
    points.send_keys("lots")
    box = chrome.find_element(By.ID, "json")
    box.send_keys('{"backgroundColor": "red"}')
    chrome.find_element(By.XPATH, "//button[normalize-space()='Save and push']").click()
    alert = visible(chrome, "[role=alert]")
    assert "$.storeCard.headerFields[0].value" in alert.text and "$.backgroundColor" in alert.text
    assert chrome.find_element(By.ID, "headerFields.0").get_attribute("value") == "lots"
    assert chrome.find_element(By.ID, "json").get_attribute("value") == '{"backgroundColor": "red"}'
    fits_the_phone(chrome, "edit-problems")

    points = chrome.find_element(By.ID, "headerFields.0")
    points.clear()
    points.send_keys("120")
    chrome.find_element(By.ID, "json").clear()
    chrome.find_element(By.XPATH, "//button[normalize-space()='Save and push']").click()
    wait(chrome).until(seen.url_matches(r"/browser-points$"))
    flash = chrome.find_element(By.CSS_SELECTOR, ".flash")
    assert "devices that hold it are being told" in flash.text
    assert "120" in chrome.find_element(By.CSS_SELECTOR, ".pass-header").text
    fits_the_phone(chrome, "pass-after-change")
    shown = admin.get("/api/passes/pass.com.example.test/browser-points").get_json()
    assert shown["pass"]["storeCard"]["headerFields"][0]["value"] == 120


def test_admin_creates_a_pass_from_a_phone(
    server: tuple[Flask, str], chrome: WebDriver, admin: Admin
) -> None:
    _, base = server
    sign_in(chrome, base)
    chrome.find_element(By.LINK_TEXT, "New pass").click()
    serial = wait(chrome).until(seen.visibility_of_element_located((By.ID, "serialNumber")))
    serial.send_keys("browser-new")
    member = chrome.find_element(By.ID, "secondaryFields.0")
    member.clear()
    member.send_keys("Ada Lovelace")
    chrome.find_element(By.XPATH, "//button[normalize-space()='Create the pass']").click()
    wait(chrome).until(seen.url_matches(r"/browser-new$"))
    assert "Ada Lovelace" in chrome.find_element(By.CSS_SELECTOR, ".pass").text
    shown = admin.get("/api/passes/pass.com.example.test/browser-new").get_json()
    assert shown["pass"]["storeCard"]["secondaryFields"][0]["value"] == "Ada Lovelace"


def test_a_voided_pass_page_offers_nothing_to_add(
    server: tuple[Flask, str], chrome: WebDriver, admin: Admin
) -> None:
    served, _ = server
    admin.create_pass(serialNumber="browser-voided")
    admin.post("/api/passes/pass.com.example.test/browser-voided/void")
    url = public_link(served, "browser-voided")
    chrome.get(url)
    status = visible(chrome, ".unavailable")
    assert "This pass has been voided" in status.text
    assert not chrome.find_elements(By.LINK_TEXT, "Add to Apple Wallet")
    fits_the_phone(chrome, "public-voided")
    chrome.get(url + "/pass.pkpass")
    heading = wait(chrome).until(seen.visibility_of_element_located((By.TAG_NAME, "h1")))
    assert heading.text == "This pass has been voided"
    fits_the_phone(chrome, "public-voided-download")


def test_the_sample_logo_stands_out_from_the_card(
    server: tuple[Flask, str], chrome: WebDriver, admin: Admin
) -> None:
    served, _ = server
    admin.create_pass(serialNumber="browser-logo")
    chrome.get(public_link(served, "browser-logo"))
    logo = visible(chrome, "img.pass-logo")
    # The logo's pixels as drawn on the card: most of what is opaque must differ clearly from
    # the card's background colour, or the logo is invisible on it.
    drawn = chrome.execute_script(
        """
        const img = arguments[0];
        const canvas = document.createElement("canvas");
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        const context = canvas.getContext("2d");
        context.drawImage(img, 0, 0);
        const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
        const [r, g, b] = getComputedStyle(img.closest(".pass")).backgroundColor
            .match(/\\d+/g).map(Number);
        let opaque = 0, contrasting = 0;
        for (let i = 0; i < data.length; i += 4) {
            if (data[i + 3] < 128) continue;
            opaque++;
            const distance = Math.abs(data[i] - r) + Math.abs(data[i + 1] - g)
                + Math.abs(data[i + 2] - b);
            if (distance > 200) contrasting++;
        }
        return [opaque / (data.length / 4), contrasting / Math.max(opaque, 1)];
        """,
        logo,
    )
    covered, contrasting = drawn
    assert covered > 0.15 and contrasting > 0.9, drawn
    assert logo.size["height"] >= 30
    fits_the_phone(chrome, "public-pass")
