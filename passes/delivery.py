"""Delivery tracking: did the last update of a pass reach each device that holds it?

Each registration keeps what its device last did with its pass (models.Registration): the
last push and APNs's answer, the last serial list, the last download, the last failed
download. The device paths write them cheaply, one UPDATE on rows they already know; the
push worker writes them with the answers of a batch. `delivery_state` turns a record into
one of five states; the pass page, the doctor and (later) metrics all read them from here.

Wallet's pass download (GET /v1/passes/...) does not say which device asks: the pass's
token is the same on every device. A download is credited to the device whose serial list
named the pass longest ago without a download since (Wallet fetches what the list named,
at once); with none waiting, to the only device holding the pass; otherwise to no one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from models import (
    Device,
    DeviceLogEntry,
    Pass,
    Registration,
    RegistrationEventCount,
    db,
    utcnow,
)
from passes import store
from passes.apns import Outcome, PushResult
from passes.store import dialect_insert

# A device that has made no request this long after a push is called silent: phones
# postpone background pushes for hours (Low Power Mode, no network, a phone switched off
# for the night), so a day without a word means something is wrong: the phone is gone,
# the pass was removed while offline, or "Automatic Updates" is off for it in Wallet.
SILENT_AFTER = timedelta(hours=24)
FETCH_ERROR_LENGTH = 300  # models.Registration.fetch_error
PUSH_REASON_LENGTH = 64  # models.Registration.push_reason


class State(StrEnum):
    CURRENT = "current"  # holds the pass's current version
    WOKEN = "woken"  # pushed (APNs accepted), not fetched yet
    WAITING = "waiting"  # a push is queued for it
    FAILING = "failing"  # APNs refused the last push, or its last download failed
    SILENT = "silent"  # no request for SILENT_AFTER since it was pushed


_SILENT_HOURS = int(SILENT_AFTER.total_seconds() // 3600)
MEANINGS = {
    State.CURRENT: "holds the pass's current version",
    State.WAITING: "a push to it is queued and not sent yet",
    State.WOKEN: "APNs accepted its push; it has not downloaded the pass since",
    State.FAILING: "APNs refused its last push, or its last download failed",
    State.SILENT: f"no request from it in the {_SILENT_HOURS} hours after a push",
}


@dataclass(frozen=True)
class Delivery:
    """Everything the state of one device for one pass depends on."""

    pass_tag: int  # the pass's current version
    pass_updated_at: datetime
    registered_at: datetime
    push_queued: bool
    pushed_at: datetime | None = None
    pushed_tag: int | None = None
    push_outcome: str | None = None
    push_status: int | None = None
    push_reason: str | None = None
    apns_id: str | None = None
    listed_at: datetime | None = None
    listed_tag: int | None = None
    named_at: datetime | None = None
    fetched_at: datetime | None = None
    fetched_tag: int | None = None
    fetch_failed_at: datetime | None = None
    fetch_error: str | None = None

    @property
    def holds_current(self) -> bool:
        if self.fetched_tag is not None:
            return self.fetched_tag >= self.pass_tag
        # Never downloaded through us since registering: it holds what it registered with,
        # the current version unless the pass changed after that.
        return self.pass_updated_at <= self.registered_at

    @property
    def push_refused(self) -> bool:
        return self.push_outcome == Outcome.FAILED

    @property
    def fetch_failed(self) -> bool:
        return self.fetch_failed_at is not None and (
            self.fetched_at is None or self.fetch_failed_at > self.fetched_at
        )

    @property
    def last_request_at(self) -> datetime | None:
        moments = [m for m in (self.listed_at, self.fetched_at, self.fetch_failed_at) if m]
        return max(moments) if moments else None


def delivery_state(delivery: Delivery, now: datetime) -> State:
    """The one rule for a device's state; the first that applies wins."""
    if delivery.holds_current:
        return State.CURRENT
    if delivery.push_refused or delivery.fetch_failed:
        return State.FAILING
    if delivery.push_queued:
        return State.WAITING
    # Not current, nothing queued: it was pushed (or the change predates the record) and
    # should have asked since.
    woken_at = delivery.pushed_at or delivery.pass_updated_at
    last_request = delivery.last_request_at
    if (last_request is None or last_request < woken_at) and now - woken_at > SILENT_AFTER:
        return State.SILENT
    return State.WOKEN


# --- Recording --------------------------------------------------------------------------------

REGISTERED, UNREGISTERED, REMOVED = "registered", "unregistered", "removed"


def count_event(event: str, count: int = 1, connection: sa.Connection | None = None) -> None:
    """Add to this hour's count of registrations, unregistrations or removals."""
    if not count:
        return
    hour = utcnow().replace(minute=0, second=0, microsecond=0)
    upsert = (
        dialect_insert(RegistrationEventCount, connection)
        .values(hour=hour, event=event, count=count)
        .on_conflict_do_update(
            index_elements=[RegistrationEventCount.hour, RegistrationEventCount.event],
            set_={"count": RegistrationEventCount.count + count},
        )
    )
    (connection or db.session).execute(upsert)


def record_list(
    registration_ids: Sequence[int], named_ids: Iterable[int], tag: int | None, now: datetime
) -> None:
    """A device asked for its serial list: given `tag`, told to fetch `named_ids`."""
    named = list(named_ids)
    values: dict[str, Any] = {"listed_at": now, "listed_tag": tag}
    if named:
        # Named again before downloading: it keeps its place in the queue.
        values["named_at"] = sa.case(
            (Registration.id.in_(named), sa.func.coalesce(Registration.named_at, now)),
            else_=Registration.named_at,
        )
    db.session.execute(
        sa.update(Registration)
        .where(Registration.id.in_(registration_ids))
        .values(values)
        .execution_options(synchronize_session=False)
    )


def _downloader(pass_id: int) -> sa.ColumnElement[Any]:
    """The registration a download of the pass is credited to (see the module docstring).

    Both lookups stay small however many devices hold the pass: the first walks the
    partial index of registrations waiting to download, the second reads two rows at most.
    Thousands of phones downloading one pass at once each take a different waiting row
    (SKIP LOCKED, PostgreSQL) instead of queueing for the oldest one's lock.
    """
    waiting = (
        sa.select(Registration.id)
        .where(Registration.pass_id == pass_id, Registration.named_at.is_not(None))
        .order_by(Registration.named_at)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    two = sa.select(Registration.id).where(Registration.pass_id == pass_id).limit(2).subquery()
    only = sa.select(sa.func.max(two.c.id)).having(sa.func.count() == 1).scalar_subquery()
    return sa.func.coalesce(waiting, only)


def record_fetch(pass_: Pass, now: datetime) -> None:
    """A device downloaded the pass's current version (or was told it holds it: 304)."""
    db.session.execute(
        sa.update(Registration)
        .where(Registration.id == _downloader(pass_.id))
        .values(fetched_at=now, fetched_tag=pass_.update_tag, named_at=None)
        .execution_options(synchronize_session=False)
    )


def record_fetch_failure(pass_id: int, error: str, now: datetime) -> None:
    db.session.execute(
        sa.update(Registration)
        .where(Registration.id == _downloader(pass_id))
        .values(fetch_failed_at=now, fetch_error=error[:FETCH_ERROR_LENGTH])
        .execution_options(synchronize_session=False)
    )


# Wallet's log line for a failed download, e.g. "Get pass task (pass type pass.com.x, serial
# number 42, if-modified-since (null); with web service url https://...) encountered error:
# Unexpected response code 500".
_GET_PASS_FAILED = re.compile(
    r"Get pass task \(pass type (?P<type>[^,]+), serial number (?P<serial>.+?), "
    r"if-modified-since.*?encountered error: (?P<error>.*)",
    re.DOTALL,
)


def record_wallet_log(messages: Iterable[str], now: datetime) -> None:
    """Note the failed downloads that Wallet reports in its log on the device they concern."""
    for message in messages:
        match = _GET_PASS_FAILED.search(message)
        if match is None:
            continue
        pass_id = db.session.scalar(
            sa.select(Pass.id).where(
                Pass.pass_type_identifier == match["type"].strip(),
                Pass.serial_number == match["serial"].strip(),
            )
        )
        if pass_id is not None:
            record_fetch_failure(pass_id, "Wallet: " + match["error"].strip(), now)


def record_pushes(
    connection: sa.Connection,
    devices_by_token: dict[str, list[int]],
    results: Iterable[PushResult],
    now: datetime,
) -> None:
    """Write a batch's APNs answers on the registrations of the devices pushed.

    In the worker's finish transaction, before dead tokens' devices are deleted (their
    registrations are counted as removed). One statement for the batch on PostgreSQL.
    """
    rows: list[dict[str, Any]] = []
    dead: dict[str, list[int]] = {}
    for result in results:
        devices = devices_by_token.get(result.token, [])
        if result.outcome is Outcome.DEAD_TOKEN:
            dead[result.token] = devices
            continue
        reason = result.reason[:PUSH_REASON_LENGTH] if result.reason else None
        rows += [
            {
                "device": device,
                "outcome": str(result.outcome),
                "status": result.status,
                "reason": reason,
                "apns_id": result.apns_id,
            }
            for device in devices
        ]
    if rows:
        _write_pushes(connection, rows, now)
    removed = 0
    for dead_token, devices in dead.items():
        removed += (
            connection.scalar(
                sa.select(sa.func.count())
                .select_from(Registration)
                .join(Device, Device.id == Registration.device_id)
                .where(Device.id.in_(devices), Device.push_token == dead_token)
            )
            or 0
        )
    count_event(REMOVED, removed, connection)


def _write_pushes(connection: sa.Connection, rows: list[dict[str, Any]], now: datetime) -> None:
    pass_tag = sa.select(Pass.update_tag).where(Pass.id == Registration.pass_id).scalar_subquery()
    if connection.dialect.name == "postgresql":
        answers = sa.values(
            sa.column("device", sa.Integer),
            sa.column("outcome", sa.String),
            sa.column("status", sa.Integer),
            sa.column("reason", sa.String),
            sa.column("apns_id", sa.String),
            name="answers",
        ).data([tuple(row.values()) for row in rows])
        connection.execute(
            sa.update(Registration)
            .where(Registration.device_id == answers.c.device)
            .values(
                pushed_at=now,
                pushed_tag=pass_tag,
                push_outcome=answers.c.outcome,
                push_status=answers.c.status,
                push_reason=answers.c.reason,
                apns_id=answers.c.apns_id,
            )
        )
        return
    # SQLite runs in-process: one statement per device costs no round trip.
    connection.execute(
        sa.update(Registration)
        .where(Registration.device_id == sa.bindparam("device"))
        .values(
            pushed_at=now,
            pushed_tag=pass_tag,
            push_outcome=sa.bindparam("outcome"),
            push_status=sa.bindparam("status"),
            push_reason=sa.bindparam("reason"),
            apns_id=sa.bindparam("apns_id"),
        ),
        rows,
    )


# --- Reading ----------------------------------------------------------------------------------

_RECORD = (
    Registration.pushed_at,
    Registration.pushed_tag,
    Registration.push_outcome,
    Registration.push_status,
    Registration.push_reason,
    Registration.apns_id,
    Registration.listed_at,
    Registration.listed_tag,
    Registration.named_at,
    Registration.fetched_at,
    Registration.fetched_tag,
    Registration.fetch_failed_at,
    Registration.fetch_error,
)


@dataclass(frozen=True)
class DeviceDelivery:
    """One device holding a pass, its record and its state."""

    device_id: int
    device_library_identifier: str
    token_prefix: str  # tells devices apart without being enough to push to them
    delivery: Delivery
    state: State


def deliveries_of(
    pass_: Pass, limit: int | None = None, offset: int = 0, now: datetime | None = None
) -> list[DeviceDelivery]:
    """The devices holding the pass with their states, oldest registration first."""
    now = now or utcnow()
    found = []
    rows = store.registrations_of(pass_, limit, offset, extra=_RECORD)
    for device, registered_at, queued, *record in rows:
        delivery = Delivery(
            pass_.update_tag, pass_.updated_at, registered_at, queued is not None, *record
        )
        found.append(
            DeviceDelivery(
                device.id,
                device.device_library_identifier,
                device.push_token[:8],
                delivery,
                delivery_state(delivery, now),
            )
        )
    return found


# The number in "serial number 42," must be the whole serial: "42" is not "421".
def _mentions(message: str, pass_: Pass) -> bool:
    return re.search(
        r"serial number " + re.escape(pass_.serial_number) + r"[,;)\s]", message
    ) is not None and (pass_.pass_type_identifier in message)


def log_entries_about(pass_: Pass, limit: int = 20) -> list[DeviceLogEntry]:
    """Wallet's log messages that name the pass, newest first."""
    candidates = db.session.scalars(
        sa.select(DeviceLogEntry)
        .where(
            DeviceLogEntry.message.contains(f"serial number {pass_.serial_number}", autoescape=True)
        )
        .order_by(DeviceLogEntry.id.desc())
        .limit(limit * 5)
    )
    return [entry for entry in candidates if _mentions(entry.message, pass_)][:limit]


@dataclass(frozen=True)
class Event:
    """One step in a device's timeline."""

    at: datetime
    what: str
    detail: str = ""
    bad: bool = False


def timeline(item: DeviceDelivery, wallet_log: Iterable[DeviceLogEntry]) -> list[Event]:
    """What happened between the device and the pass, oldest first."""
    d = item.delivery
    events = [Event(d.registered_at, "registered")]
    if d.pushed_at:
        answer = " ".join(str(p) for p in (d.push_status, d.push_reason) if p) or "no answer"
        detail = f"update tag {d.pushed_tag}; APNs: {answer}"
        if d.apns_id:
            detail += f"; apns-id {d.apns_id}"
        events.append(Event(d.pushed_at, "pushed", detail, bad=d.push_outcome != Outcome.SENT))
    if d.listed_at:
        events.append(Event(d.listed_at, "listed", f"given tag {d.listed_tag}"))
    if d.fetched_at:
        events.append(Event(d.fetched_at, "fetched", f"update tag {d.fetched_tag}"))
    if d.fetch_failed_at:
        events.append(Event(d.fetch_failed_at, "fetch failed", d.fetch_error or "", bad=True))
    events += [
        Event(entry.created_at, "Wallet log", entry.message, bad=True) for entry in wallet_log
    ]
    return sorted(events, key=lambda event: event.at)


def push_to_fetch(since: datetime) -> tuple[list[float], int]:
    """Seconds from each accepted push since `since` to the download that followed it, and
    how many of those pushes have no download yet (each device's latest push only)."""
    rows = db.session.execute(
        sa.select(Registration.pushed_at, Registration.fetched_at).where(
            Registration.push_outcome == str(Outcome.SENT), Registration.pushed_at >= since
        )
    )
    latencies, waiting = [], 0
    for pushed_at, fetched_at in rows:
        if fetched_at is not None and fetched_at >= pushed_at:
            latencies.append((fetched_at - pushed_at).total_seconds())
        else:
            waiting += 1
    return latencies, waiting
