"""The delivery views in a real headless Chromium at a phone's 390 px: the pass page's states,
timelines and doctor, and the overview's charts, drawn with no network beyond this server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as seen
from werkzeug.serving import make_server

from tests import test_browser
from tests.apns_server import FakeApns
from tests.conftest import ADMIN_TOKEN
from tests.test_browser import CHROMIUM, _stop, wait
from tests.test_delivery_pages import prepare_deliveries

# The phone-sized Chromium of tests/test_browser.py (one per module, like there).
chrome = test_browser.chrome
downloads = test_browser.downloads

SCREENSHOTS = Path("/tmp")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Chromium is not installed: apt-get install chromium chromium-driver",
)


@pytest.fixture
def pushing_server(
    make_app: Callable[..., Flask], app: Flask, apns: FakeApns
) -> Iterator[tuple[Flask, str]]:
    """The app pushing to the test APNs, served over HTTP on a free port."""
    served = make_app(APNS_URL=apns.url, APNS_CA_FILE=apns.ca_file)
    http = make_server("127.0.0.1", 0, served, threaded=True)
    served.config.update(SESSION_COOKIE_SECURE=False)  # PUBLIC_URL stays https: passes valid
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{http.server_port}"
    _stop(http, thread)


def sign_in(driver: WebDriver, base: str) -> None:
    driver.delete_all_cookies()
    driver.get(base + "/admin/login")
    driver.find_element(By.NAME, "token").send_keys(ADMIN_TOKEN)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver).until(seen.visibility_of_element_located((By.NAME, "q")))


def whole_page_screenshot(driver: WebDriver, path: Path) -> None:
    """The full height of the page at the phone's width, for a person to look at."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    metrics = {"width": 390, "height": height, "deviceScaleFactor": 2, "mobile": True}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    driver.save_screenshot(str(path))
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": 844})


def fits_the_phone(driver: WebDriver) -> bool:
    return driver.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"
    ) and (driver.execute_script("return window.innerWidth") == 390)


def test_the_overview_charts_render_at_phone_width(
    pushing_server: tuple[Flask, str], chrome: WebDriver, apns: FakeApns
) -> None:
    served, base = pushing_server
    prepare_deliveries(served, apns, "browser-charts")
    sign_in(chrome, base)
    chrome.find_element(By.LINK_TEXT, "Overview").click()
    charts = wait(chrome).until(
        seen.visibility_of_all_elements_located((By.CSS_SELECTOR, "svg.chart"))
    )
    assert len(charts) == 3
    for chart in charts:
        assert 300 <= chart.size["width"] <= 390 and chart.size["height"] > 80
        assert chart.find_elements(By.TAG_NAME, "rect"), chart.get_attribute("aria-label")
    assert fits_the_phone(chrome)
    # Nothing came from anywhere but this server (no CDN, no font, no script).
    resources = chrome.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert all(name.startswith(base) for name in resources), resources
    whole_page_screenshot(chrome, SCREENSHOTS / "delivery_overview.png")
    charts[0].screenshot(str(SCREENSHOTS / "delivery_pushes_chart.png"))


def test_the_pass_page_shows_states_timelines_and_the_doctor_at_phone_width(
    pushing_server: tuple[Flask, str], chrome: WebDriver, apns: FakeApns
) -> None:
    served, base = pushing_server
    prepare_deliveries(served, apns, "browser-states")
    sign_in(chrome, base)
    chrome.get(base + "/admin/passes/pass.com.example.test/browser-states")
    verdict = wait(chrome).until(
        seen.visibility_of_element_located((By.CSS_SELECTOR, ".verdict.broken"))
    )
    assert "device phone-0002" in verdict.text and "TopicDisallowed" in verdict.text
    states = chrome.find_elements(By.CSS_SELECTOR, "details.device summary")
    assert [s.text for s in states] == ["current", "failing", "woken"]
    states[1].click()
    timeline = wait(chrome).until(
        seen.visibility_of_element_located((By.CSS_SELECTOR, "details.device[open] ol"))
    )
    assert "pushed" in timeline.text and "400 TopicDisallowed" in timeline.text
    assert fits_the_phone(chrome)
    whole_page_screenshot(chrome, SCREENSHOTS / "delivery_pass_page.png")
    chrome.find_element(By.CSS_SELECTOR, ".scroll table").screenshot(
        str(SCREENSHOTS / "delivery_devices.png")
    )
