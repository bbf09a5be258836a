"""/metrics: Prometheus's text format behind METRICS_TOKEN, counts that add up across real
gunicorn workers, and figures read from the database."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from models import (
    Device,
    Pass,
    PendingPush,
    PushOutcomeCount,
    Registration,
    WebhookMessage,
    db,
    utcnow,
)
from passes import pushing
from tests.apns_server import FakeApns
from tests.conftest import process_env
from tests.delivery_phones import create_pass, phone, record
from tests.pushes import patch
from tests.test_webservice import DEVICE
from tests.test_worker import wait_until

ROOT = Path(__file__).resolve().parent.parent
METRICS_TOKEN = "metrics-token-for-the-tests"
BEARER = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a scrape."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def metrics_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(METRICS_TOKEN=METRICS_TOKEN)


def scrape(app: Flask) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = app.test_client().get("/metrics", headers=BEARER)
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")
    return samples(response.get_data(as_text=True))


def test_metrics_are_off_without_a_token(app: Flask) -> None:
    response = app.test_client().get("/metrics", headers=BEARER)
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {METRICS_TOKEN}", "Bearer"])
def test_a_wrong_token_is_401(metrics_app: Flask, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = metrics_app.test_client().get("/metrics", headers=headers)
    assert response.status_code == 401
    assert METRICS_TOKEN not in response.get_data(as_text=True)


def test_device_requests_are_counted_by_endpoint_and_status(metrics_app: Flask) -> None:
    key = (
        "passes_http_requests_total",
        (("endpoint", "webservice.updated_serials"), ("status", "204")),
    )
    before = scrape(metrics_app).get(key, 0)
    client = metrics_app.test_client()
    for _ in range(3):
        client.get(f"/wallet/v1/devices/{DEVICE}/registrations/pass.com.example.test")
    after = scrape(metrics_app)
    assert after[key] == before + 3
    bucket = after[
        (
            "passes_http_request_duration_seconds_count",
            (("endpoint", "webservice.updated_serials"),),
        )
    ]
    assert bucket >= 3


def test_database_figures_are_read_at_each_scrape(metrics_app: Flask) -> None:
    now = utcnow()
    with metrics_app.app_context():
        device = Device(device_library_identifier="d1", push_token="ab" * 32)
        db.session.add(device)
        db.session.flush()
        db.session.add(
            PendingPush(
                device_id=device.id,
                pass_type_identifier="pass.com.example.test",
                due_at=now - timedelta(seconds=90),
            )
        )
        db.session.add(PushOutcomeCount(hour=now, outcome="sent", count=41))
        db.session.add(PushOutcomeCount(hour=now - timedelta(hours=1), outcome="sent", count=1))
        db.session.add(
            WebhookMessage(
                message_id="msg_1",
                event_type="pass.registered",
                body="{}",
                due_at=now,
                attempts=2,
                created_at=now - timedelta(seconds=30),
            )
        )
        db.session.commit()
    figures = scrape(metrics_app)
    assert figures[("passes_database_up", ())] == 1
    assert figures[("passes_pushes_total", (("outcome", "sent"),))] == 42
    assert figures[("passes_push_queue_due", ())] == 1
    assert 90 <= figures[("passes_push_queue_oldest_due_seconds", ())] < 150
    assert figures[("passes_webhook_backlog", ())] == 1
    assert figures[("passes_webhook_failing", ())] == 1
    assert 30 <= figures[("passes_webhook_oldest_undelivered_seconds", ())] < 90
    days = figures[
        ("passes_certificate_days_to_expiry", (("pass_type_identifier", "pass.com.example.test"),))
    ]
    assert 360 < days <= 366


def test_a_scrape_without_the_database_says_so(make_app: Callable[..., Flask]) -> None:
    app = make_app(
        METRICS_TOKEN=METRICS_TOKEN,
        SQLALCHEMY_DATABASE_URI="postgresql+psycopg2://nobody@127.0.0.1:9/none",
        SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"connect_timeout": 2}},
    )
    figures = scrape(app)
    assert figures[("passes_database_up", ())] == 0
    assert ("passes_push_queue_due", ()) not in figures


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(url: str) -> bool:
    """Whether a GET of `url` answers 200 (False while the server is not up yet)."""
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def gunicorn(
    app: Flask, database_uri: str, chain_files: dict[str, Path], tmp_path: Path
) -> Iterator[str]:
    """The Procfile's web process, two workers, with gunicorn.conf.py as production reads it."""
    port = free_port()
    env = process_env(
        database_uri,
        chain_files,
        METRICS_TOKEN=METRICS_TOKEN,
        PUSH_MODE="off",
        WEB_CONCURRENCY=2,
        PORT=port,
        PROMETHEUS_MULTIPROC_DIR=tmp_path / "metrics",
    )
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "counter_999999.db").write_bytes(b"left by an earlier run")
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "app:create_app()"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(base + "/healthz"), "gunicorn to serve", timeout=60)
        yield base
    finally:
        process.terminate()
        process.wait(15)
        log.close()


def test_counts_add_up_across_gunicorn_workers(gunicorn: str, tmp_path: Path) -> None:
    url = f"{gunicorn}/wallet/v1/devices/{DEVICE}/registrations/pass.com.example.test"
    key = (
        "passes_http_requests_total",
        (("endpoint", "webservice.updated_serials"), ("status", "204")),
    )

    def ask(_: int) -> int:
        return httpx.get(url, headers={"Connection": "close"}).status_code

    def counting() -> set[str]:
        return {path.name for path in (tmp_path / "metrics").glob("counter_*.db")}

    # Eight at a time on new connections, until both workers have answered some (the
    # kernel hands connections to whichever worker accepts first).
    sent = 0
    with ThreadPoolExecutor(8) as pool:
        deadline = time.monotonic() + 60
        # At least one round: the start-up probes of /healthz may have made both files.
        while (sent == 0 or len(counting()) < 2) and time.monotonic() < deadline:
            assert set(pool.map(ask, range(40))) == {204}
            sent += 40
    assert len(counting()) >= 2, counting()
    # Every scrape, whichever worker answers it, sees them all.
    for _ in range(6):
        response = httpx.get(f"{gunicorn}/metrics", headers={**BEARER, "Connection": "close"})
        assert samples(response.text)[key] == sent
    assert samples(response.text)[("passes_database_up", ())] == 1


def test_the_counts_of_an_earlier_run_are_dropped_at_start(gunicorn: str, tmp_path: Path) -> None:
    assert not (tmp_path / "metrics" / "counter_999999.db").exists()
    assert httpx.get(f"{gunicorn}/metrics", headers=BEARER).status_code == 200


def push_to_fetch(figures: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> tuple:
    """(count, sum, count within 5 s) of the push-to-fetch histogram."""
    return (
        figures.get(("passes_push_to_fetch_seconds_count", ()), 0),
        figures.get(("passes_push_to_fetch_seconds_sum", ()), 0),
        figures.get(("passes_push_to_fetch_seconds_bucket", (("le", "5.0"),)), 0),
    )


def test_push_to_fetch_is_measured_once_per_push_end_to_end(
    make_app: Callable[..., Flask], apns: FakeApns
) -> None:
    app = make_app(METRICS_TOKEN=METRICS_TOKEN, APNS_URL=apns.url, APNS_CA_FILE=apns.ca_file)
    create_pass(app, "timed")
    woken, idle = phone(app, 1), phone(app, 2)
    assert woken.register("timed") == 201
    assert idle.register("timed") == 201
    # A download nobody was pushed for is no answer to a push.
    assert woken.fetch("timed") == 200
    count, total, fast = push_to_fetch(scrape(app))

    patch(app, "timed")
    with app.app_context():
        assert pushing.drain_now().sent == 2  # through the real HTTP/2 APNs server
    pushed_at = record(app, "timed", "phone-0001").pushed_at
    assert woken.woken() == ["timed"]  # lists, downloads
    fetched_at = record(app, "timed", "phone-0001").fetched_at
    assert woken.fetch("timed") == 200  # again: the push was answered already
    figures = scrape(app)
    assert push_to_fetch(figures)[0] == count + 1
    assert push_to_fetch(figures)[1] - total == pytest.approx(
        (fetched_at - pushed_at).total_seconds(), abs=1e-3
    )
    assert push_to_fetch(figures)[2] == fast + 1  # well within 5 s
    # The other phone answers later, once; the next push is measured afresh.
    assert idle.woken() == ["timed"]
    record(app, "timed", "phone-0002")  # a reader: written before the next push is
    patch(app, "timed", "again")
    with app.app_context():
        assert pushing.drain_now().sent == 2
    assert woken.woken() == ["timed"]
    assert push_to_fetch(scrape(app))[0] == count + 3


def test_push_to_fetch_adds_up_across_gunicorn_workers(app: Flask, gunicorn: str) -> None:
    passes = 8
    for n in range(passes):
        create_pass(app, f"spread-{n}")
        assert phone(app, n).register(f"spread-{n}") == 201
    with app.app_context():  # the worker's record of an accepted push to each, a minute ago
        db.session.execute(
            sa.update(Registration).values(
                push_outcome="sent",
                pushed_at=utcnow() - timedelta(minutes=1),
                pushed_tag=sa.select(Pass.update_tag)
                .where(Pass.id == Registration.pass_id)
                .scalar_subquery(),
            )
        )
        db.session.commit()

    def download(n: int) -> int:
        url = f"{gunicorn}/wallet/v1/passes/pass.com.example.test/spread-{n}"
        headers = {**phone(app, n)._auth(f"spread-{n}"), "Connection": "close"}
        return httpx.get(url, headers=headers).status_code

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(download, range(passes))) == {200}

    def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        response = httpx.get(f"{gunicorn}/metrics", headers={**BEARER, "Connection": "close"})
        return samples(response.text)

    # Each worker writes its downloads' records within a second (delivery.Recorder).
    wait_until(
        lambda: scraped()[("passes_push_to_fetch_seconds_count", ())] == passes,
        "every worker's downloads to be written",
        timeout=10,
    )
    for _ in range(4):  # whichever worker answers the scrape
        figures = scraped()
        assert figures[("passes_push_to_fetch_seconds_count", ())] == passes
        assert figures[("passes_push_to_fetch_seconds_bucket", (("le", "60.0"),))] == 0
        assert figures[("passes_push_to_fetch_seconds_bucket", (("le", "300.0"),))] == passes
