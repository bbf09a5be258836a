"""Prometheus metrics at `/metrics`, behind METRICS_TOKEN (unset: 404).

Two kinds, each from where it is true:
- What a web process sees (requests by endpoint and status, their latency) is counted in the
  process. Under gunicorn, each worker writes its counts to PROMETHEUS_MULTIPROC_DIR
  (gunicorn.conf.py sets it up) and a scrape adds up every worker's, whichever answers it.
- What the database knows (pushes by outcome, the push queue, the webhook outbox) is read
  from it at each scrape, so workers on other machines count too, and restarts lose nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, request
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from models import PendingPush, PushOutcomeCount, db, utcnow
from passes import context, delivery, webhooks
from passes.errors import NotFound, Unauthorized
from passes.tokens import bearer_matches

bp = Blueprint("metrics", __name__)

REQUESTS = Counter(
    "passes_http_requests_total",
    "HTTP requests answered, by Flask endpoint (webservice.* are the devices') and status.",
    ["endpoint", "status"],
)
REQUEST_SECONDS = Histogram(
    "passes_http_request_duration_seconds",
    "Time to answer a request, by Flask endpoint.",
    ["endpoint"],
    # Device requests take milliseconds; Heroku's router gives up at 30 s.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


SILENT_SECONDS = delivery.SILENT_AFTER.total_seconds()
PUSH_TO_FETCH_SECONDS = Histogram(
    "passes_push_to_fetch_seconds",
    "Time from a device's accepted push to its download of the version pushed, once per push.",
    # Awake phones answer in seconds; Low Power Mode, no network or a phone switched off for
    # the night postpone it by hours, and a day without an answer is what delivery calls
    # silent (passes/delivery.py).
    buckets=(1, 2, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, SILENT_SECONDS),
)


def observe_push_to_fetch(seconds: float) -> None:
    """A device downloaded what it was pushed for (called by the web service's download)."""
    PUSH_TO_FETCH_SECONDS.observe(seconds)


def observe_request(endpoint: str, status: str, seconds: float) -> None:
    """Count one answered request (called by the request-log middleware)."""
    REQUESTS.labels(endpoint, status).inc()
    REQUEST_SECONDS.labels(endpoint).observe(seconds)


@bp.get("/metrics")
def metrics() -> Response:
    expected = current_app.config.get("METRICS_TOKEN")
    if not expected:
        raise NotFound("metrics are off: set METRICS_TOKEN to turn them on")
    if not bearer_matches(request.headers.get("Authorization", ""), expected):
        raise Unauthorized("send Authorization: Bearer <METRICS_TOKEN>")
    try:  # a reader flushes first: this process's downloads are in the scrape that follows
        delivery.recorder().flush()
    except SQLAlchemyError:
        db.session.rollback()  # the database figures say it is down
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # every gunicorn worker's counts
    else:
        registry.register(REGISTRY)  # one process: its own counts
    registry.register(DatabaseCollector())
    # The format the scraper asks for (Prometheus's text format, or OpenMetrics).
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(registry), content_type=content_type)


class DatabaseCollector(Collector):
    """Figures read from the database at each scrape."""

    def collect(self) -> Iterator[Metric]:
        try:
            figures = list(self._from_database())
        except SQLAlchemyError:
            db.session.rollback()
            figures = []
        yield GaugeMetricFamily(
            "passes_database_up",
            "1 when the database answered this scrape.",
            value=int(bool(figures)),
        )
        yield from figures
        yield self._certificate()

    def _from_database(self) -> Iterator[Metric]:
        now = utcnow()
        pushes = CounterMetricFamily(
            "passes_pushes",
            "Pushes answered by APNs (or given up), by outcome, by every worker.",
            labels=["outcome"],
        )
        rows = db.session.execute(
            sa.select(PushOutcomeCount.outcome, sa.func.sum(PushOutcomeCount.count)).group_by(
                PushOutcomeCount.outcome
            )
        )
        for outcome, count in rows:
            pushes.add_metric([outcome], float(count or 0))
        yield pushes

        depth, oldest = db.session.execute(
            sa.select(sa.func.count(), sa.func.min(PendingPush.due_at)).where(
                PendingPush.due_at <= now
            )
        ).one()
        yield GaugeMetricFamily(
            "passes_push_queue_due",
            "Pushes due now (one per device and pass type).",
            value=depth,
        )
        yield GaugeMetricFamily(
            "passes_push_queue_oldest_due_seconds",
            "How long the longest-waiting due push has waited (0: none waits).",
            value=_age(oldest, now),
        )

        outbox = webhooks.backlog()
        yield GaugeMetricFamily(
            "passes_webhook_backlog",
            "Webhook messages not yet delivered.",
            value=outbox.undelivered,
        )
        yield GaugeMetricFamily(
            "passes_webhook_failing",
            "Undelivered webhook messages whose endpoint has already failed them at least once.",
            value=outbox.failing,
        )
        yield GaugeMetricFamily(
            "passes_webhook_oldest_undelivered_seconds",
            "Age of the oldest undelivered webhook message (0: none).",
            value=_age(outbox.oldest, now),
        )

    def _certificate(self) -> Metric:
        certificate = GaugeMetricFamily(
            "passes_certificate_days_to_expiry",
            "Days until the certificate used for each pass type expires (negative: expired).",
            labels=["pass_type_identifier"],
        )
        for pass_type, credentials in context.runtime().certificates.in_use.items():
            days = (credentials.expires_at - datetime.now(UTC)).total_seconds() / 86400
            certificate.add_metric([pass_type], days)
        return certificate


def _age(since: datetime | None, now: datetime) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0
