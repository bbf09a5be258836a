"""Draining the push queue: claim pending devices, push them over APNs, record outcomes.

Pass changes write `pending_pushes` rows in their own transaction (passes/store.py), so a
crash after commit loses nothing. A drain repeats three steps, one after the other:

1. claim a batch: a short lease on up to PUSH_BATCH_SIZE due devices, taken with SKIP LOCKED
   on PostgreSQL so that workers on several machines never take the same rows;
2. send it, with no transaction open, renewing the lease while APNs answers;
3. finish it: delete what was sent, drop dead tokens, reschedule the rest.

Each pass type is pushed with its own certificate and topic: a batch holds devices of any
type, and each type's part goes over that type's APNs client (one per certificate).

A worker holds one batch at a time, for one short lease. Killed, its devices go to another
worker when the lease runs out, and at most that batch is pushed twice: at least once, never
dropped. Stopped (SIGTERM), it hands back what it could not finish. A database outage pauses
it until the database returns. passes/pacing.py spreads the pushes out, since every phone
woken calls the web service back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app

from models import Device, PendingPush, PushOutcomeCount, db, utcnow
from passes import background, context, delivery, outages, pacing, webhooks
from passes.apns import ApnsClient, ApnsSettings, CertificateRejected, Outcome, PushResult
from passes.credentials import PassCredentials
from passes.outages import DATABASE_DOWN, Outage
from passes.pacing import Pacer
from passes.store import dialect_insert

log = logging.getLogger(__name__)

# Pushes that could not be delivered now (429/5xx after the sender's own retries) wait
# longer each time, up to an hour, and are never dropped.
RETRY_BASE = timedelta(seconds=30)
RETRY_CAP = timedelta(hours=1)
# On SIGTERM a batch in flight gets this long to be answered before it is handed back:
# enough for APNs to answer a batch, well within the 30 s Heroku allows before SIGKILL.
STOP_GRACE_SECONDS = 3.0


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
    """One batch's part of one pass type (the APNs topic): the version of each claimed
    row and the devices behind each token."""

    topic: str
    versions: dict[int, int] = field(default_factory=dict)
    devices_by_token: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))


def apns_settings(credentials: PassCredentials) -> ApnsSettings:
    """How to push passes of the credentials' type: its certificate, its topic."""
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


@contextlib.asynccontextmanager
async def apns_clients() -> AsyncIterator[dict[str, ApnsClient]]:
    """One APNs client per pass type, each presenting its type's certificate (APNs refuses
    a topic that is not the certificate's). A client connects at its first push."""
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for topic, credentials in context.certificates().in_use.items():
            client = ApnsClient(apns_settings(credentials))
            clients[topic] = await stack.enter_async_context(client)
        yield clients


def pending_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(PendingPush)) or 0


def _claim(
    engine: sa.Engine, limit: int, lease: timedelta, topics: Collection[str]
) -> list[_Claimed]:
    """Lease up to `limit` due pushes of these pass types to this worker, in a transaction
    of its own; one part per type."""
    now = utcnow()
    key = sa.tuple_(PendingPush.device_id, PendingPush.pass_type_identifier)
    available = (
        sa.select(PendingPush.device_id, PendingPush.pass_type_identifier)
        .where(PendingPush.pass_type_identifier.in_(topics))
        .where(PendingPush.due_at <= now)
        .where(sa.or_(PendingPush.claimed_until.is_(None), PendingPush.claimed_until < now))
        .order_by(PendingPush.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite serialises writers anyway
    )
    claim = sa.update(PendingPush).where(key.in_(available)).values(claimed_until=now + lease)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # One statement claims the rows and returns their tokens (UPDATE ... FROM devices).
            rows = connection.execute(
                claim.where(PendingPush.device_id == Device.id).returning(
                    PendingPush.device_id,
                    PendingPush.pass_type_identifier,
                    PendingPush.version,
                    Device.push_token,
                )
            ).all()
        else:
            # SQLite's RETURNING cannot name another table's columns: read the tokens after.
            claimed_rows = connection.execute(
                claim.returning(
                    PendingPush.device_id, PendingPush.pass_type_identifier, PendingPush.version
                )
            ).all()
            tokens = dict(
                connection.execute(
                    sa.select(Device.id, Device.push_token).where(
                        Device.id.in_({row[0] for row in claimed_rows})
                    )
                ).all()
            )
            rows = [(*row, tokens[row[0]]) for row in claimed_rows if row[0] in tokens]
    parts: dict[str, _Claimed] = {}
    for device_id, topic, version, token in rows:
        part = parts.setdefault(topic, _Claimed(topic))
        part.versions[device_id] = version
        part.devices_by_token[token].append(device_id)
    return list(parts.values())


def _retry_at(attempts: int, now: datetime) -> datetime:
    delay = min(RETRY_CAP, RETRY_BASE * 2 ** min(attempts, 10))
    return now + delay * random.uniform(0.5, 1.0)


def _of(claimed: _Claimed) -> Any:
    """The pending rows of a claimed part (a device has one per pass type)."""
    return sa.and_(
        PendingPush.pass_type_identifier == claimed.topic,
        PendingPush.device_id.in_(claimed.versions),
    )


def _renew(engine: sa.Engine, claimed: _Claimed, lease: timedelta) -> None:
    """Extend the lease on a batch that is still being sent."""
    with engine.begin() as connection:
        connection.execute(
            sa.update(PendingPush).where(_of(claimed)).values(claimed_until=utcnow() + lease)
        )


def _finish(engine: sa.Engine, claimed: _Claimed, results: list[PushResult]) -> PushSummary:
    """Record a batch's answers in one transaction: delete what was delivered, drop dead
    tokens, reschedule what must be tried later, free the rest of the lease. With no
    results, this hands the whole batch back."""
    summary = PushSummary()
    done: list[tuple[int, int]] = []
    dead: dict[str, list[int]] = {}
    later: list[int] = []
    # APNs's reason for each dead token and failed device, for the webhook events.
    reasons: dict[str, str | None] = {}
    failed: dict[int, str | None] = {}
    for result in results:
        devices = claimed.devices_by_token.get(result.token, [])
        if result.outcome in (Outcome.SENT, Outcome.FAILED):
            # FAILED is a refusal that retrying cannot fix (the sender logged the reason).
            done += [(device, claimed.versions[device]) for device in devices]
            if result.outcome is Outcome.SENT:
                summary.sent += len(devices)
            else:
                summary.failed += len(devices)
                failed.update(dict.fromkeys(devices, result.reason))
        elif result.outcome is Outcome.DEAD_TOKEN:
            dead[result.token] = devices
            reasons[result.token] = result.reason
        else:
            later += devices
            summary.retry_later += len(devices)
    now = utcnow()
    with engine.begin() as connection:
        delivery.record_pushes(connection, claimed.topic, claimed.devices_by_token, results, now)
        # The batch's queue rows (of its one pass type), locked at once in the order of their
        # devices' ids, as a change queueing pushes takes them (store._enqueue_for, by device
        # and type); the statements below take them group by group. SQLite has no row locks
        # and one writer at a time.
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.select(PendingPush.device_id)
                .where(_of(claimed))
                .order_by(PendingPush.device_id)
                .with_for_update()
            )
        # Only the version we pushed: a row that a newer update bumped meanwhile stays. Rows
        # share a handful of versions, so one plain IN list per version is far cheaper than
        # a list of (device, version) pairs.
        deleted = 0
        for version, devices in _group_by(done).items():
            deleted += connection.execute(
                sa.delete(PendingPush).where(
                    PendingPush.version == version,
                    PendingPush.pass_type_identifier == claimed.topic,
                    PendingPush.device_id.in_(devices),
                )
            ).rowcount
        events: list[webhooks.Event] = []
        for dead_token, devices in dead.items():
            # Registrations and pending rows go with the device (ON DELETE CASCADE). Only
            # while it still has the dead token: a device that registered again meanwhile
            # (a restored phone) came with a new one and keeps its passes.
            gone = connection.scalars(
                sa.delete(Device)
                .where(Device.id.in_(devices), Device.push_token == dead_token)
                .returning(Device.device_library_identifier)
            ).all()
            reason = reasons[dead_token]
            events += [
                webhooks.Event("device.removed", device_library_identifier=d, reason=reason)
                for d in gone
            ]
        removed = summary.removed = len(events)
        if failed:  # rare: read the devices' identifiers only then
            identifiers = connection.execute(
                sa.select(Device.id, Device.device_library_identifier).where(Device.id.in_(failed))
            )
            events += [
                webhooks.Event("push.failed", device_library_identifier=d, reason=failed[pk])
                for pk, d in identifiers
            ]
        webhooks.emit(connection, events)
        if later:
            _reschedule(connection, claimed.topic, later, now)
        # What is still claimed (bumped by a newer update, or never answered) is free again.
        # Usually that is nothing, and the UPDATE over every claimed id is not worth making.
        dead_devices = sum(len(devices) for devices in dead.values())
        finished = len(done) + dead_devices + len(later)
        if deleted < len(done) or removed < dead_devices or finished < len(claimed.versions):
            connection.execute(
                sa.update(PendingPush)
                .where(_of(claimed))
                .where(PendingPush.device_id.not_in(later))
                .values(claimed_until=None)
            )
        _count_outcomes(connection, summary, now)
    return summary


def _reschedule(connection: sa.Connection, topic: str, devices: list[int], now: datetime) -> None:
    of_topic = PendingPush.pass_type_identifier == topic
    attempts = connection.execute(
        sa.select(PendingPush.device_id, PendingPush.attempts).where(
            of_topic, PendingPush.device_id.in_(devices)
        )
    ).all()
    # One UPDATE per number of attempts so far (a few), each with its own jitter.
    for count, group in _group_by(attempts).items():
        connection.execute(
            sa.update(PendingPush)
            .where(of_topic, PendingPush.device_id.in_(group))
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


class Drainer:
    """Sends what is queued over APNs clients, one per pass type: claim, send, finish, one
    after the other."""

    def __init__(
        self,
        clients: Mapping[str, ApnsClient],
        engine: sa.Engine,
        *,
        batch_size: int,
        lease: timedelta,
        pacer: Pacer,
        stop: asyncio.Event | None = None,
        outage: Outage | None = None,
    ) -> None:
        self.clients = clients
        self.engine = engine
        self.batch_size = batch_size
        self.lease = lease
        self.pacer = pacer
        self.stop = stop or asyncio.Event()
        self.outage = outage or Outage()
        self.total = PushSummary()  # everything recorded, across drains that failed midway
        # Batches sent whose finish failed (database down): recorded before anything else,
        # so that an outage does not make their devices wait for the lease and be pushed twice.
        self.unrecorded: list[tuple[_Claimed, list[PushResult]]] = []

    @classmethod
    def from_config(
        cls,
        clients: Mapping[str, ApnsClient],
        config: Any,
        *,
        pacer: Pacer | None = None,
        stop: asyncio.Event | None = None,
        outage: Outage | None = None,
    ) -> Drainer:
        return cls(
            clients,
            db.engine,
            batch_size=config["PUSH_BATCH_SIZE"],
            lease=timedelta(seconds=config["PUSH_LEASE_SECONDS"]),
            pacer=pacer or pacing.from_config(config, db.engine),
            stop=stop,
            outage=outage,
        )

    async def drain(self, progress: Callable[[int], None] | None = None) -> PushSummary:
        """Push every device due now, batch after batch, until none is left or `stop` is set.

        The driver's errors propagate when the database fails (work_forever waits them out).
        """
        summary = self.record_unrecorded()
        while not await self.pacer.wait(self.stop):
            size = self.pacer.batch_size(self.batch_size)
            parts = _claim(self.engine, size, self.lease, list(self.clients))
            self.outage.over()
            if not parts:
                break
            self.pacer.started(
                [d for part in parts for ds in part.devices_by_token.values() for d in ds]
            )
            batch = PushSummary()
            # Each pass type's part over its own client, at the same time.
            for part in await asyncio.gather(*(self._push(part) for part in parts)):
                batch.add(part)
            summary.add(batch)
            if progress:
                progress(batch.total)
            if batch.certificate_rejected:
                break
        return summary

    def record_unrecorded(self) -> PushSummary:
        summary = PushSummary()
        for entry in list(self.unrecorded):
            summary.add(self._record(entry))
        return summary

    async def _push(self, claimed: _Claimed) -> PushSummary:
        """Send one claimed part and record its answers; hand it back when stopped first."""
        rejected = None
        try:
            results = await self._send(claimed)
        except CertificateRejected as error:
            results, rejected = error.results, error.reason
        except BaseException:  # Ctrl-C in a command, or a bug: free the batch for others
            self._hand_back(claimed)
            raise
        if results is None:
            self._hand_back(claimed)
            return PushSummary()
        entry = (claimed, results)
        self.unrecorded.append(entry)
        summary = self._record(entry)
        if rejected:
            log.error(
                "APNs rejected the pass certificate for %s (%s): pushes stopped. Check that "
                "the certificate configured for it is its Pass Type ID certificate and not "
                "expired or revoked.",
                claimed.topic,
                rejected,
            )
            summary.certificate_rejected = rejected
        return summary

    async def _send(self, claimed: _Claimed) -> list[PushResult] | None:
        """The batch's answers, its lease renewed meanwhile; None when stopped first.

        Asked to stop, the batch gets a few seconds more: APNs answers a batch well within
        them, unless it is slow or unreachable, and then the batch is handed back unanswered.
        Its pushes already answered are then sent again by the next worker: a background push
        too many is harmless, a device left waiting is not.
        """
        client = self.clients[claimed.topic]
        sending = asyncio.ensure_future(client.push(list(claimed.devices_by_token)))
        renewing = asyncio.ensure_future(self._keep_leased(claimed))
        stopping = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait([sending, stopping], return_when=asyncio.FIRST_COMPLETED)
            if not sending.done():
                await asyncio.wait([sending], timeout=STOP_GRACE_SECONDS)
            return sending.result() if sending.done() else None
        finally:
            for task in (sending, renewing, stopping):
                task.cancel()
            await asyncio.wait([sending, renewing, stopping])

    async def _keep_leased(self, claimed: _Claimed) -> None:
        """Renew the batch's lease every third of it, for as long as it is being sent."""
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                # In a thread: the sending goes on while the database answers (or does not).
                await asyncio.to_thread(_renew, self.engine, claimed, self.lease)
            except DATABASE_DOWN as error:
                self.outage.failed(error)  # the finish will wait for the database

    def _record(self, entry: tuple[_Claimed, list[PushResult]]) -> PushSummary:
        summary = _finish(self.engine, *entry)
        self.unrecorded = [other for other in self.unrecorded if other is not entry]
        self.total.add(summary)
        self.outage.over()
        log.info("push batch: %s", summary.line())
        return summary

    def _hand_back(self, claimed: _Claimed) -> None:
        """Free a batch that was not sent, so that another worker sends it now."""
        try:
            _finish(self.engine, claimed, [])
        except DATABASE_DOWN as error:
            self.outage.failed(error)  # then its lease runs out instead
            return
        log.info("handed back %d devices not pushed", len(claimed.versions))


def drain_now(
    progress: Callable[[int], None] | None = None, pacer: Pacer | None = None
) -> PushSummary:
    """Send what is due now, then return: for commands and the inline pusher."""

    async def run() -> PushSummary:
        async with apns_clients() as clients:
            drainer = Drainer.from_config(clients, current_app.config, pacer=pacer)
            return await drainer.drain(progress)

    return asyncio.run(run())


async def work_forever(
    app: Flask, stop: asyncio.Event, outage: Outage | None = None
) -> PushSummary:
    """The worker: drain, then wait a little for more, until `stop` is set.

    One APNs client per pass type for its lifetime. A database outage pauses it instead of ending it
    (`outage` is shared with the worker's other tasks, so that it is logged once).
    """
    with app.app_context():
        async with apns_clients() as clients:
            drainer = Drainer.from_config(clients, app.config, stop=stop, outage=outage)
            while not stop.is_set():
                try:
                    batch = await drainer.drain()
                except DATABASE_DOWN as error:
                    await outages.pause(stop, drainer.outage.failed(error))
                    continue
                if batch.certificate_rejected:
                    # Retrying every second would hammer Apple with a refused certificate.
                    await outages.pause(stop, 60)
                elif batch.total == 0:
                    await outages.pause(stop, app.config["PUSH_POLL_SECONDS"])
            # Stopped during an outage with a batch sent and not recorded: one last try.
            with contextlib.suppress(*DATABASE_DOWN):
                drainer.record_unrecorded()
    return drainer.total


class InlinePusher:
    """Pushes right after a commit, in a background thread: for a development server or
    an SQLite deployment that runs no worker. One drain at a time per process; a change
    made during a drain is picked up by another round."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        # One pace across the process's drains.
        with app.app_context():
            self.pacer = pacing.from_config(app.config, db.engine)
        self._rerun = background.Rerun(self._drain, "inline push")

    def __call__(self) -> None:
        if not context.runtime_of(self.app).certificates:
            return  # nothing can be pushed; the rows wait for a configured server
        self._rerun()

    def stop(self) -> None:
        self._rerun.stop()

    def _drain(self) -> None:
        with self.app.app_context():
            summary = drain_now(pacer=self.pacer)
            db.session.remove()
        if summary.total:
            log.info("inline push: %s", summary.line())
        if summary.removed or summary.failed:  # each is a webhook event
            context.runtime_of(self.app).deliver_webhooks()
