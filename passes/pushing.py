"""Draining the push queue: claim pending devices, push them over APNs, record outcomes.

Pass changes write `pending_pushes` rows in their own transaction (passes/store.py), so a
crash after commit loses nothing. Draining happens in three short transactions per batch:
claim (a lease, taken with SKIP LOCKED on PostgreSQL so workers on several machines never
take the same rows), send (no transaction open), finish (delete what was sent, drop dead
tokens, reschedule the rest). The finish of one batch and the claim of the next run in a
thread while the event loop sends. A worker that dies mid-batch leaves leases that expire, and
the next worker sends those devices again: at least once, never silently dropped.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import Flask, current_app

from models import Device, PendingPush, PushOutcomeCount, db, utcnow
from passes import context
from passes.apns import ApnsClient, ApnsSettings, CertificateRejected, Outcome, PushResult
from passes.store import dialect_insert

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
# Pushes that could not be delivered now (429/5xx after the sender's own retries) wait
# longer each time, up to an hour, and are never dropped.
RETRY_BASE = timedelta(seconds=30)
RETRY_CAP = timedelta(hours=1)


@dataclass
class PushSummary:
    """What a drain did, for the CLI's last line and the logs."""

    sent: int = 0
    removed: int = 0
    retry_later: int = 0
    failed: int = 0
    certificate_rejected: str | None = None

    def add(self, other: PushSummary) -> None:
        self.sent += other.sent
        self.removed += other.removed
        self.retry_later += other.retry_later
        self.failed += other.failed
        self.certificate_rejected = other.certificate_rejected or self.certificate_rejected

    @property
    def total(self) -> int:
        return self.sent + self.removed + self.retry_later + self.failed

    def line(self) -> str:
        text = (
            f"sent {self.sent}, tokens removed {self.removed}, "
            f"failed {self.failed}, left pending {self.retry_later}"
        )
        if self.certificate_rejected:
            text += f"; STOPPED: APNs rejected the certificate ({self.certificate_rejected})"
        return text


@dataclass
class _Claimed:
    """One batch: the version of each claimed row and the devices behind each token."""

    versions: dict[int, int] = field(default_factory=dict)
    devices_by_token: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))


def apns_settings() -> ApnsSettings:
    credentials = context.credentials()
    config = current_app.config
    return ApnsSettings(
        topic=credentials.pass_type_identifier,
        cert_pem=credentials.certificate_pem(),
        key_pem=credentials.private_key_pem(),
        url=config["APNS_URL"],
        ca_file=config.get("APNS_CA_FILE") or None,
        max_streams=config["APNS_MAX_STREAMS"],
        max_connections=config["APNS_MAX_CONNECTIONS"],
        backoff_base=config["APNS_BACKOFF_SECONDS"],
    )


def pending_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(PendingPush)) or 0


def _claim(limit: int) -> _Claimed:
    """Lease up to `limit` due devices to this worker, in a transaction of its own."""
    now = utcnow()
    available = (
        sa.select(PendingPush.device_id)
        .where(PendingPush.due_at <= now)
        .where(sa.or_(PendingPush.claimed_until.is_(None), PendingPush.claimed_until < now))
        .order_by(PendingPush.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite serialises writers anyway
    )
    claim = (
        sa.update(PendingPush)
        .where(PendingPush.device_id.in_(available))
        .values(claimed_until=now + LEASE)
    )
    # Its own connection, not the session: drain() runs this in a thread beside the sending.
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # One statement claims the rows and returns their tokens (UPDATE ... FROM devices).
            rows = connection.execute(
                claim.where(PendingPush.device_id == Device.id).returning(
                    PendingPush.device_id, PendingPush.version, Device.push_token
                )
            ).all()
        else:
            # SQLite's RETURNING cannot name another table's columns: read the tokens after.
            versions = dict(
                connection.execute(
                    claim.returning(PendingPush.device_id, PendingPush.version)
                ).all()
            )
            tokens = connection.execute(
                sa.select(Device.id, Device.push_token).where(Device.id.in_(versions))
            )
            rows = [(device_id, versions[device_id], token) for device_id, token in tokens]
    claimed = _Claimed()
    for device_id, version, token in rows:
        claimed.versions[device_id] = version
        claimed.devices_by_token[token].append(device_id)
    return claimed


def _retry_at(attempts: int, now: datetime) -> datetime:
    delay = min(RETRY_CAP, RETRY_BASE * 2 ** min(attempts, 10))
    return now + delay * random.uniform(0.5, 1.0)


def _finish(claimed: _Claimed, results: list[PushResult]) -> PushSummary:
    """Record a batch's answers in one transaction: delete what was delivered, drop dead
    tokens, reschedule what must be tried later, free the rest of the lease."""
    summary = PushSummary()
    done: list[tuple[int, int]] = []
    dead: list[int] = []
    later: list[int] = []
    for result in results:
        devices = claimed.devices_by_token.get(result.token, [])
        if result.outcome in (Outcome.SENT, Outcome.FAILED):
            # FAILED is a refusal that retrying cannot fix (the sender logged the reason).
            done += [(device, claimed.versions[device]) for device in devices]
            if result.outcome is Outcome.SENT:
                summary.sent += len(devices)
            else:
                summary.failed += len(devices)
        elif result.outcome is Outcome.DEAD_TOKEN:
            dead += devices
            summary.removed += len(devices)
        else:
            later += devices
            summary.retry_later += len(devices)
    now = utcnow()
    with db.engine.begin() as connection:
        # Only the version we pushed: a row that a newer update bumped meanwhile stays. Rows
        # share a handful of versions, so one plain IN list per version is far cheaper than
        # a list of (device, version) pairs.
        deleted = 0
        for version, devices in _group_by(done).items():
            deleted += connection.execute(
                sa.delete(PendingPush).where(
                    PendingPush.version == version, PendingPush.device_id.in_(devices)
                )
            ).rowcount
        if dead:
            # Registrations and pending rows go with the device (ON DELETE CASCADE).
            connection.execute(sa.delete(Device).where(Device.id.in_(dead)))
        if later:
            _reschedule(connection, later, now)
        # What is still claimed (bumped by a newer update, or never answered) is free again.
        # Usually that is nothing, and the UPDATE over every claimed id is not worth making.
        if deleted < len(done) or len(done) + len(dead) + len(later) < len(claimed.versions):
            connection.execute(
                sa.update(PendingPush)
                .where(PendingPush.device_id.in_(claimed.versions))
                .where(PendingPush.device_id.not_in(later))
                .values(claimed_until=None)
            )
        _count_outcomes(connection, summary, now)
    return summary


def _reschedule(connection: sa.Connection, devices: list[int], now: datetime) -> None:
    attempts = connection.execute(
        sa.select(PendingPush.device_id, PendingPush.attempts).where(
            PendingPush.device_id.in_(devices)
        )
    ).all()
    # One UPDATE per number of attempts so far (a few), each with its own jitter.
    for count, group in _group_by(attempts).items():
        connection.execute(
            sa.update(PendingPush)
            .where(PendingPush.device_id.in_(group))
            .values(attempts=count + 1, claimed_until=None, due_at=_retry_at(count, now))
        )


def _group_by(pairs: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    """{value: [device ids]} from (device id, value) pairs."""
    groups: dict[int, list[int]] = defaultdict(list)
    for device_id, value in pairs:
        groups[value].append(device_id)
    return groups


def _count_outcomes(connection: sa.Connection, summary: PushSummary, now: datetime) -> None:
    hour = now.replace(minute=0, second=0, microsecond=0)
    counts = {
        "sent": summary.sent,
        "removed": summary.removed,
        "retry_later": summary.retry_later,
        "failed": summary.failed,
    }
    for outcome, count in counts.items():
        if not count:
            continue
        upsert = dialect_insert(PushOutcomeCount, connection).values(
            hour=hour, outcome=outcome, count=count
        )
        upsert = upsert.on_conflict_do_update(
            index_elements=[PushOutcomeCount.hour, PushOutcomeCount.outcome],
            set_={"count": PushOutcomeCount.count + count},
        )
        connection.execute(upsert)


async def drain(
    client: ApnsClient,
    *,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> PushSummary:
    """Push every device that is due now, batch after batch, over one client.

    While a batch is being sent, a thread records the answers to the one before and claims
    the next, so the database's time hides behind the sending (bench/push_worker.py).
    """
    summary = PushSummary()

    def record(batch: PushSummary) -> None:
        summary.add(batch)
        log.info("push batch: %s", batch.line())
        if progress:
            progress(batch.total)

    claimed = await asyncio.to_thread(_claim, batch_size)
    answered: tuple[_Claimed, list[PushResult]] | None = None
    while claimed.versions:
        sending = asyncio.ensure_future(client.push(list(claimed.devices_by_token)))
        try:
            if answered is not None:
                record(await asyncio.to_thread(_finish, *answered))
            # Claimed after the finish, so that rows it freed (bumped by a newer update
            # meanwhile) are taken again at once.
            upcoming = await asyncio.to_thread(_claim, batch_size)
        except BaseException:
            # The database failed: stop sending what could not be recorded. The leases
            # expire and the next drain sends those devices again.
            sending.cancel()
            raise
        try:
            answered = (claimed, await sending)
        except CertificateRejected as rejected:
            stopped = await asyncio.to_thread(_finish, claimed, rejected.results)
            await asyncio.to_thread(_finish, upcoming, [])  # not sent: free its lease now
            stopped.certificate_rejected = rejected.reason
            record(stopped)
            log.error(
                "APNs rejected the pass certificate (%s): pushes stopped. Check that "
                "PASS_CERTIFICATE is the Pass Type ID certificate for %s and not expired "
                "or revoked.",
                rejected.reason,
                client.settings.topic,
            )
            return summary
        claimed = upcoming
    if answered is not None:
        record(await asyncio.to_thread(_finish, *answered))
    return summary


def tune_gc_for_sending() -> None:
    """For a process whose job is pushing (the worker, the push command).

    Each push allocates a few short-lived objects (h2 events, futures) that reference
    counting frees; the collector's default of a pass every 700 allocations then spends
    about a fifth of a 100,000-device drain rescanning the app's long-lived objects
    (bench/push_worker.py). Freeze what start-up made and collect less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


def drain_now(progress: Callable[[int], None] | None = None) -> PushSummary:
    """Synchronous drain for commands and the inline pusher."""

    async def run() -> PushSummary:
        async with ApnsClient(apns_settings()) as client:
            return await drain(
                client, batch_size=current_app.config["PUSH_BATCH_SIZE"], progress=progress
            )

    return asyncio.run(run())


async def work_forever(
    app: Flask, *, poll_seconds: float, stop: threading.Event | None = None
) -> PushSummary:
    """The worker: drain, then wait a little for more; one APNs client for its lifetime."""
    total = PushSummary()
    stop = stop or threading.Event()
    with app.app_context():
        async with ApnsClient(apns_settings()) as client:
            while not stop.is_set():
                batch = await drain(client, batch_size=app.config["PUSH_BATCH_SIZE"])
                total.add(batch)
                db.session.remove()
                if batch.certificate_rejected:
                    # Retrying every second would hammer Apple with a refused certificate.
                    await asyncio.sleep(60)
                elif batch.total == 0:
                    await asyncio.sleep(poll_seconds)
    return total


class InlinePusher:
    """Pushes right after a commit, in a background thread: for a development server or
    an SQLite deployment that runs no worker. One drain at a time per process; a change
    made during a drain is picked up by another round."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._again = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self) -> None:
        if context.runtime().credentials is None:
            return  # nothing can be pushed; the rows wait for a configured server
        with self._lock:
            self._again.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._again.is_set():
                    self._thread = None
                    return
                self._again.clear()
            try:
                with self.app.app_context():
                    summary = drain_now()
                    db.session.remove()
                if summary.total:
                    log.info("inline push: %s", summary.line())
            except Exception:
                log.exception("inline push failed; the pushes stay pending")

    def wait_idle(self, timeout: float) -> bool:
        """For tests and shutdown: True once no drain is running."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True
