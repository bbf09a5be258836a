"""Webhooks: what the business's own systems hear, signed as Standard Webhooks specifies.

An event is written to the outbox (`webhook_messages`), one row per endpoint that takes its
type, in the transaction of the change that caused it: a crash loses none, and a change
rolled back sends none. The worker delivers the outbox (on SQLite, with PUSH_MODE=inline,
the web process does, after the commit), in a task of its own, so a slow or dead endpoint
never holds up pushes or device requests. Delivery is at least once: an answer other than
2xx, or none within WEBHOOK_TIMEOUT_SECONDS, is retried later with growing waits, for as
long as it takes; a worker killed mid-delivery leaves its rows to the next one when the lease
runs out. Receivers drop repeats by the `webhook-id` header, which every attempt repeats.

Signing (https://www.standardwebhooks.com): `webhook-signature` is `v1,` + base64 of
HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the secret: a
`whsec_` secret is base64 after the prefix (the form Standard Webhooks' libraries take), any
other secret is used as its UTF-8 text.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.orm import Session, scoped_session

from models import WEBHOOK_URL_LENGTH, WebhookEndpoint, WebhookMessage, db, utcnow
from passes import after_commit, background, context
from passes.errors import Conflict, NotFound
from passes.outages import DATABASE_DOWN, Outage, pause

log = logging.getLogger(__name__)

EVENT_TYPES = (
    "pass.registered",  # a device added the pass (a new registration)
    "pass.unregistered",  # a device removed it
    "pass.personalized",  # the customer signed up through the pass (rewards enrollment)
    "device.removed",  # APNs said the device's push token is dead; its registrations went
    "push.failed",  # APNs refused a push for good (not a dead token: those remove the device)
)
SECRET_PREFIX = "whsec_"
# Retries: the first after about this long, doubling, never more than RETRY_CAP apart.
RETRY_BASE = timedelta(seconds=5)
RETRY_CAP = timedelta(hours=1)
# Delivered messages stay this long for the dashboard and the admin API.
KEEP_DELIVERED = timedelta(days=7)
# Messages claimed and sent at once: each batch's requests go out together.
BATCH_SIZE = 100
# Endpoints added through the admin API: every event is written once per endpoint.
MAX_ENDPOINTS = 20
# On SIGTERM, requests in flight get this long before their messages are handed back.
STOP_GRACE_SECONDS = 3.0
# The job, queued after commit, that delivers from the web process (PUSH_MODE=inline).
INLINE_DELIVERY = "inline webhook delivery"


@dataclass(frozen=True)
class Event:
    """Something that happened, with the identifiers of what it happened to."""

    type: str
    pass_type_identifier: str | None = None
    serial_number: str | None = None
    device_library_identifier: str | None = None
    reason: str | None = None

    def data(self) -> dict[str, str]:
        fields = {
            "passTypeIdentifier": self.pass_type_identifier,
            "serialNumber": self.serial_number,
            "deviceLibraryIdentifier": self.device_library_identifier,
            "reason": self.reason,
        }
        return {key: value for key, value in fields.items() if value is not None}


def url_problem(url: str) -> str | None:
    """What is wrong with an endpoint's URL, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http or https URL with a host"
    if len(url) > WEBHOOK_URL_LENGTH:
        return f"must be at most {WEBHOOK_URL_LENGTH} characters"
    return None


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret; ValueError when a `whsec_` secret is not base64."""
    if secret.startswith(SECRET_PREFIX):
        try:
            key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except binascii.Error:
            raise ValueError(f"a secret starting with {SECRET_PREFIX} must be base64") from None
    else:
        key = secret.encode()
    if len(key) < 16:
        raise ValueError("a webhook secret must hold at least 16 bytes")
    return key


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def signature(key: bytes, message_id: str, timestamp: int, body: str) -> str:
    digest = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def emit(
    executor: Session | scoped_session[Session] | sa.Connection, events: Iterable[Event]
) -> int:
    """Queue each event for every endpoint that takes its type, in the caller's transaction.

    Returns the number of messages queued. Does nothing (and costs one small query) when no
    endpoint is configured.
    """
    events = list(events)
    if not events:
        return 0
    endpoints = _subscriptions(executor)
    now = utcnow()
    rows = []
    for event in events:
        message_id = "msg_" + secrets.token_hex(16)
        body = json.dumps(
            {"type": event.type, "timestamp": _iso(now), "data": event.data()},
            separators=(",", ":"),
        )
        rows += [
            {
                "message_id": message_id,
                "endpoint_id": endpoint_id,
                "event_type": event.type,
                "body": body,
                "created_at": now,
                "due_at": now,
                "attempts": 0,
            }
            for endpoint_id, types in endpoints
            if types is None or event.type in types
        ]
    if rows:
        executor.execute(sa.insert(WebhookMessage), rows)
        if not isinstance(executor, sa.Connection):  # the session: see deliver_after_commit
            after_commit.queue(INLINE_DELIVERY, context.runtime().deliver_webhooks)
    return len(rows)


def _subscriptions(
    executor: Session | scoped_session[Session] | sa.Connection,
) -> list[tuple[int | None, Any]]:
    """(endpoint id, its event types or None for all) of every endpoint; None is WEBHOOK_URL's."""
    found: list[tuple[int | None, Any]] = []
    if current_app.config.get("WEBHOOK_URL"):
        found.append((None, None))
    rows = executor.execute(sa.select(WebhookEndpoint.id, WebhookEndpoint.events))
    found += [(row.id, row.events) for row in rows]
    return found


def display_url(url: str) -> str:
    """An endpoint's URL for people: without its query, which may hold the receiver's key."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?…" if parts.query else "")


@dataclass(frozen=True)
class EndpointView:
    """An endpoint as admins see it: never its secret."""

    id: str  # "env" for WEBHOOK_URL
    url: str
    events: list[str] | None  # None: every event type
    created_at: datetime | None


def add_endpoint(
    url: str, events: list[str] | None, secret: str | None
) -> tuple[EndpointView, str]:
    """A new endpoint (not committed) and its secret, made here when none is given.

    The caller has checked the URL (url_problem) and the secret (secret_key).
    """
    count = db.session.scalar(sa.select(sa.func.count()).select_from(WebhookEndpoint)) or 0
    if count >= MAX_ENDPOINTS:
        raise Conflict(
            f"there are already {MAX_ENDPOINTS} endpoints, the most this service keeps (every "
            "event is written once per endpoint): remove one first"
        )
    secret = secret or new_secret()
    endpoint = WebhookEndpoint(url=url, events=events, secret=secret, created_at=utcnow())
    db.session.add(endpoint)
    db.session.flush()
    return _view(endpoint), secret


def remove_endpoint(endpoint_id: int) -> None:
    """Remove an endpoint and its undelivered messages (not committed)."""
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound("no webhook endpoint has this id (WEBHOOK_URL's goes by unsetting it)")
    db.session.delete(endpoint)


def _view(endpoint: WebhookEndpoint) -> EndpointView:
    return EndpointView(str(endpoint.id), endpoint.url, endpoint.events, endpoint.created_at)


def endpoints() -> list[EndpointView]:
    found = []
    if current_app.config.get("WEBHOOK_URL"):
        found.append(EndpointView("env", current_app.config["WEBHOOK_URL"], None, None))
    rows = db.session.scalars(sa.select(WebhookEndpoint).order_by(WebhookEndpoint.id))
    found += [_view(endpoint) for endpoint in rows]
    return found


@dataclass(frozen=True)
class Backlog:
    undelivered: int
    failing: int  # undelivered, and failed at least once
    oldest: datetime | None  # when the oldest undelivered message was queued


def backlog() -> Backlog:
    undelivered, failing, oldest = db.session.execute(
        sa.select(
            sa.func.count(),
            sa.func.count().filter(WebhookMessage.attempts > 0),
            sa.func.min(WebhookMessage.created_at),
        ).where(WebhookMessage.delivered_at.is_(None))
    ).one()
    return Backlog(undelivered, failing, oldest)


def state_of(message: WebhookMessage) -> str:
    """delivered, failing (an attempt failed; it is tried again) or waiting (not tried yet)."""
    if message.delivered_at is not None:
        return "delivered"
    return "failing" if message.attempts else "waiting"


def recent_messages(limit: int) -> list[WebhookMessage]:
    """The newest messages, delivered or not, newest first."""
    return list(
        db.session.scalars(
            sa.select(WebhookMessage).order_by(WebhookMessage.id.desc()).limit(limit)
        )
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Delivery:
    id: int
    message_id: str
    body: str
    attempts: int
    url: str
    key: bytes


@dataclass
class _Answer:
    delivery: _Delivery
    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class DeliverySummary:
    delivered: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.delivered + self.failed

    def line(self) -> str:
        return f"webhooks delivered {self.delivered}, failed {self.failed} (retried later)"


def _claim(engine: sa.Engine, config: Any, limit: int, lease: timedelta) -> list[_Delivery]:
    """Lease up to `limit` due messages, in a transaction of their own."""
    now = utcnow()
    due = (
        sa.select(WebhookMessage.id)
        .where(WebhookMessage.due_at <= now)
        .where(sa.or_(WebhookMessage.claimed_until.is_(None), WebhookMessage.claimed_until < now))
        .order_by(WebhookMessage.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if not config.get("WEBHOOK_URL"):
        # WEBHOOK_URL was unset after these were queued: they wait for it to come back.
        due = due.where(WebhookMessage.endpoint_id.is_not(None))
    with engine.begin() as connection:
        rows = connection.execute(
            sa.update(WebhookMessage)
            .where(WebhookMessage.id.in_(due))
            .values(claimed_until=now + lease)
            .returning(
                WebhookMessage.id,
                WebhookMessage.message_id,
                WebhookMessage.endpoint_id,
                WebhookMessage.body,
                WebhookMessage.attempts,
            )
        ).all()
        ids = {row.endpoint_id for row in rows} - {None}
        endpoints = {
            endpoint.id: (endpoint.url, endpoint.secret)
            for endpoint in connection.execute(
                sa.select(WebhookEndpoint.id, WebhookEndpoint.url, WebhookEndpoint.secret).where(
                    WebhookEndpoint.id.in_(ids)
                )
            )
        }
    endpoints[None] = (config.get("WEBHOOK_URL"), config.get("WEBHOOK_SECRET"))
    return [
        _Delivery(
            row.id,
            row.message_id,
            row.body,
            row.attempts,
            endpoints[row.endpoint_id][0],
            secret_key(endpoints[row.endpoint_id][1]),
        )
        for row in rows
    ]


async def _send(client: httpx.AsyncClient, delivery: _Delivery, timeout: float) -> _Answer:
    timestamp = int(time.time())  # each attempt is signed anew: receivers reject old ones
    headers = {
        "content-type": "application/json",
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(delivery.key, delivery.message_id, timestamp, delivery.body),
    }
    try:
        response = await client.post(
            delivery.url, content=delivery.body.encode(), headers=headers, timeout=timeout
        )
    except httpx.TimeoutException:
        return _Answer(delivery, None, f"no answer within {timeout:g} s")
    except httpx.HTTPError as error:
        return _Answer(delivery, None, f"{type(error).__name__}: could not reach the endpoint")
    if 200 <= response.status_code < 300:
        return _Answer(delivery, response.status_code, None)
    # Redirects are not followed (Standard Webhooks): the endpoint must be given as it is.
    return _Answer(delivery, response.status_code, f"answered HTTP {response.status_code}")


def _retry_at(attempts: int, now: datetime) -> datetime:
    delay = min(RETRY_CAP, RETRY_BASE * 2 ** min(attempts - 1, 20))
    return now + delay * random.uniform(0.75, 1.0)


def _finish(engine: sa.Engine, answers: list[_Answer]) -> DeliverySummary:
    """Record the answers: delivered rows leave the queue, the others wait their turn."""
    summary = DeliverySummary()
    now = utcnow()
    with engine.begin() as connection:
        for answer in answers:
            attempts = answer.delivery.attempts + 1
            values: dict[str, Any] = {
                "attempts": attempts,
                "claimed_until": None,
                "last_status": answer.status,
                "last_error": answer.error,
            }
            if answer.ok:
                values.update(delivered_at=now, due_at=None)
                summary.delivered += 1
            else:
                values.update(due_at=_retry_at(attempts, now))
                summary.failed += 1
            connection.execute(
                sa.update(WebhookMessage)
                .where(WebhookMessage.id == answer.delivery.id)
                .values(**values)
            )
        if summary.delivered:
            connection.execute(
                sa.delete(WebhookMessage).where(WebhookMessage.delivered_at < now - KEEP_DELIVERED)
            )
    return summary


def _hand_back(engine: sa.Engine, deliveries: list[_Delivery]) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.update(WebhookMessage)
            .where(WebhookMessage.id.in_([d.id for d in deliveries]))
            .values(claimed_until=None)
        )


class Deliverer:
    """Delivers the outbox over one httpx client, a batch at a time."""

    def __init__(self, client: httpx.AsyncClient, engine: sa.Engine, config: Any) -> None:
        self.client = client
        self.engine = engine
        self.config = config
        self.timeout = config["WEBHOOK_TIMEOUT_SECONDS"]
        # Every request of a batch is answered or abandoned within one timeout; the lease
        # leaves room for that and for recording the answers.
        self.lease = timedelta(seconds=3 * self.timeout + 5)

    async def deliver_due(self, stop: asyncio.Event | None = None) -> DeliverySummary:
        """Deliver what is due now, batch after batch, until nothing is due or `stop` is set."""
        summary = DeliverySummary()
        stop = stop or asyncio.Event()
        while not stop.is_set():
            deliveries = _claim(self.engine, self.config, BATCH_SIZE, self.lease)
            if not deliveries:
                break
            answers = await self._send_batch(deliveries, stop)
            if answers is None:
                _hand_back(self.engine, deliveries)
                break
            batch = _finish(self.engine, answers)
            if batch.failed:
                log.warning(
                    "webhooks: %d delivered, %d failed (retried later): %s",
                    batch.delivered,
                    batch.failed,
                    "; ".join(sorted({_where(a) for a in answers if not a.ok})),
                )
            summary.delivered += batch.delivered
            summary.failed += batch.failed
        return summary

    async def _send_batch(
        self, deliveries: list[_Delivery], stop: asyncio.Event
    ) -> list[_Answer] | None:
        """Every delivery's answer; None when stopped before they came (then nothing is
        recorded, and the messages are sent again: at least once)."""
        sending = asyncio.ensure_future(
            asyncio.gather(*(_send(self.client, d, self.timeout) for d in deliveries))
        )
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([sending, stopping], return_when=asyncio.FIRST_COMPLETED)
            if not sending.done():
                await asyncio.wait([sending], timeout=STOP_GRACE_SECONDS)
            return list(sending.result()) if sending.done() else None
        finally:
            for task in (sending, stopping):
                task.cancel()
            await asyncio.wait([sending, stopping])


def _where(answer: _Answer) -> str:
    # The endpoint's origin only: a path or query may carry the receiver's own token.
    url = urlsplit(answer.delivery.url)
    return f"{url.scheme}://{url.hostname}: {answer.error}"


def deliver_now(app: Flask) -> DeliverySummary:
    """Deliver what is due now, then return: for the inline deliverer and commands."""

    async def run() -> DeliverySummary:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            return await Deliverer(client, db.engine, app.config).deliver_due()

    with app.app_context():
        return asyncio.run(run())


async def deliver_forever(
    app: Flask, stop: asyncio.Event, outage: Outage | None = None
) -> DeliverySummary:
    """The worker's webhook task: deliver, then wait a little for more, until `stop` is set."""
    total = DeliverySummary()
    with app.app_context():
        async with httpx.AsyncClient(follow_redirects=False) as client:
            deliverer = Deliverer(client, db.engine, app.config)
            outage = outage or Outage("webhook deliveries")
            while not stop.is_set():
                try:
                    batch = await deliverer.deliver_due(stop)
                except DATABASE_DOWN as error:
                    await pause(stop, outage.failed(error))
                    continue
                outage.over()
                total.delivered += batch.delivered
                total.failed += batch.failed
                if not batch.total:
                    await pause(stop, app.config["PUSH_POLL_SECONDS"])
    return total


def next_due(engine: sa.Engine) -> datetime | None:
    with engine.connect() as connection:
        return connection.scalar(sa.select(sa.func.min(WebhookMessage.due_at)))


LONGEST_NAP = 60.0  # seconds: notices a message queued by another process in time


def deliver_after_commit(app: Flask) -> None:
    """Deliver from this web process after each commit that queued messages (emit() queues
    the job in the session: passes/after_commit.py; PUSH_MODE=inline, which runs no
    worker). While messages wait for a retry, it looks again when the next is due."""

    def deliver() -> float | None:
        deliver_now(app)
        with app.app_context():
            due = next_due(db.engine)
        if due is None:
            return None
        return min(LONGEST_NAP, max(0.0, (due - utcnow()).total_seconds()))

    rerun = background.Rerun(deliver, "inline webhooks")
    runtime = context.runtime_of(app)
    runtime.deliver_webhooks = rerun
    runtime.stops.append(rerun.stop)
