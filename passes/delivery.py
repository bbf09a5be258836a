"""Delivery tracking: did the last update of a pass reach each device that holds it?

Each registration keeps what its device last did with its pass (models.Registration): the
last push and APNs's answer, the last serial list, the last download, the last failed
download. The device paths leave their records with the web process's Recorder, which
writes them in batches; the push worker writes them with the answers of a batch.
`delivery_state` turns a record into one of five states; the pass page, the doctor and
the metrics all read them from here.

Wallet's pass download (GET /v1/passes/...) does not say which device asks: the pass's
token is the same on every device. A download is credited to the device whose serial list
named the pass most recently before it, without a download since: Wallet fetches what its
list named at once, so a list that no download followed soon is stale (a phone switched off
between the two, a download that failed), and must not take a later phone's credit and leave
that phone "named, not downloaded" in its place. With none waiting, a download goes to the
only device holding the pass; otherwise to no one.
The list and the download are often answered by two web processes, whose recorders write
them in either order: a download that finds no list waiting is kept for the next flushes,
up to MATCH_SECONDS, until the other process has written the list (bench/fanout.py, 3,000
phones of one pass: without this, 729 downloads were credited to no one and their phones
stayed "named, not downloaded").

Lock order (PostgreSQL): a device's row before its registrations; every statement that locks
several registration rows takes them in the order of their ids (`_in_id_order`), and a
transaction takes them all in one statement, or in id order across statements (the
recorder's lists). The push worker writes a batch's answers while the recorder, Wallet's log
and unregistrations write the same rows: locked in any other order, two of them can each
hold a row the other waits for, and PostgreSQL ends one (a device request, for Wallet's log
or an unregistration, with a 500). Waiting in line rather than skipping a locked row (SKIP
LOCKED) keeps every record; the worker holds the rows only for its short finish
transaction. The lock rides in the statement that writes: no round trip more.
"""

from __future__ import annotations

import atexit
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import aliased

from models import (
    Device,
    DeviceLogEntry,
    Pass,
    Registration,
    RegistrationEventCount,
    UTCDateTime,
    db,
    utcnow,
)
from passes import store
from passes.apns import Outcome, PushResult
from passes.outages import DATABASE_DOWN, Outage
from passes.store import dialect_insert

log = logging.getLogger(__name__)

# A device that has made no request this long after a push is called silent: phones
# postpone background pushes for hours (Low Power Mode, no network, a phone switched off
# for the night), so a day without a word means something is wrong: the phone is gone,
# the pass was removed while offline, or "Automatic Updates" is off for it in Wallet.
SILENT_AFTER = timedelta(hours=24)
FETCH_ERROR_LENGTH = 300  # models.Registration.fetch_error
PUSH_REASON_LENGTH = 64  # models.Registration.push_reason
# Downloads of one pass version are credited in steps this long (_in_credit_steps): a
# download's moment is then at most this late, well within PUSH_QUEUE_SECONDS, at one
# statement per step a crowd's downloads take.
CREDIT_STEP = timedelta(seconds=0.1)


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


@dataclass
class _Listed:
    at: datetime
    tag: int | None
    named_at: datetime | None  # when a list last named the pass, in this batch


class Recorder:
    """What the device paths saw, written by a thread of the web process, in one
    transaction every FLUSH_SECONDS.

    A serial list and a download each cost a device request a few microseconds here instead
    of an UPDATE and a commit (bench/fanout.py: written in the request, they doubled the web
    tier's CPU per phone). Readers (deliveries_of, push_to_fetch) flush first, so this
    process's own records are never missing from what they show; other processes' are at
    most FLUSH_SECONDS late. A process killed between flushes loses those seconds of records,
    which only makes a state out of date until the device's next request: nothing a device
    needs depends on them.
    """

    # Pacing reads from these records when pushed phones called back: the longer they wait
    # here, the deeper a queue at the web tier grows before pacing sees it (bench/fanout.py
    # at 1 s: p99 2.0 s, nearly all of it the first climb's queue; BENCHMARKS.md).
    FLUSH_SECONDS = 0.5
    # How long a download waits for the list that named it, written by another process
    # within FLUSH_SECONDS of it (and of the download, which came after); a margin for
    # a flush slowed down by a busy database.
    MATCH_SECONDS = 5.0
    # How long stopping waits for a flush under way before writing what is left itself.
    STOP_SECONDS = 10.0

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # one flush at a time: records keep their order
        self._lists: dict[int, _Listed] = {}
        self._fetches: dict[tuple[int, int], list[datetime]] = {}
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self.outage = Outage("delivery records")

    def listed(
        self, registration_ids: Sequence[int], named_ids: Iterable[int], tag: int | None
    ) -> None:
        """A device asked for its serial list: given `tag`, told to fetch `named_ids`."""
        now = utcnow()
        named = set(named_ids)
        with self._lock:
            for registration_id in registration_ids:
                before = self._lists.get(registration_id)
                named_at = before.named_at if before else None
                if registration_id in named:
                    named_at = now
                self._lists[registration_id] = _Listed(now, tag, named_at)
            self._start()

    def fetched(self, pass_: Pass) -> None:
        """A device downloaded the pass's current version (or was told it holds it: 304)."""
        with self._lock:
            self._fetches.setdefault((pass_.id, pass_.update_tag), []).append(utcnow())
            self._start()

    def flush(self, keep_unmatched_since: datetime | None = None) -> None:
        """Write what was recorded, in one transaction; kept for the next try if it fails.

        Downloads recorded since `keep_unmatched_since` that no waiting list matches are kept
        for the next flush (the thread's); without it, they go to the pass's only holder, if
        it has one (a reader's flush, and the last one at exit: nothing is left behind).
        """
        with self._flushing:
            with self._lock:
                lists, self._lists = self._lists, {}
                fetches, self._fetches = self._fetches, {}
            if not lists and not fetches:
                return
            try:
                with self.engine.begin() as connection:
                    _write_lists(connection, lists)
                    latencies, unmatched = _write_fetches(connection, fetches, keep_unmatched_since)
            except sa.exc.SQLAlchemyError:
                with self._lock:  # newer records win over these older ones
                    self._lists = lists | self._lists
                    self._keep(fetches)
                raise
            with self._lock:
                self._keep(unmatched)
            from passes import metrics  # it reads SILENT_AFTER from here at import

            for seconds in latencies:  # committed: into this web process's metrics
                metrics.observe_push_to_fetch(seconds)

    def _keep(self, fetches: dict[tuple[int, int], list[datetime]]) -> None:
        """Put downloads back before the ones recorded since (call with the lock held)."""
        for key, moments in fetches.items():
            self._fetches.setdefault(key, [])[:0] = moments

    def _start(self) -> None:
        if self._thread is None and not self._stopped.is_set():
            self._thread = threading.Thread(target=self._run, daemon=True, name="delivery")
            self._thread.start()
            atexit.register(self.stop)  # gunicorn's graceful stop: keep the last records

    def stop(self) -> None:
        """End the thread and write what it holds (at exit; a test, when done with an app).
        Whatever is recorded after is written by the readers' flushes."""
        self._stopped.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(self.STOP_SECONDS)
        try:
            self.flush()
        except sa.exc.SQLAlchemyError as error:
            _warn_waiting(error)

    def _run(self) -> None:
        wait = self.FLUSH_SECONDS
        while not self._stopped.wait(wait):
            wait = self.FLUSH_SECONDS
            try:
                self.flush(utcnow() - timedelta(seconds=self.MATCH_SECONDS))
            except DATABASE_DOWN as error:
                # One warning for the outage, not one a flush; the records wait in memory.
                wait = self.outage.failed(error)
            except sa.exc.SQLAlchemyError as error:
                _warn_waiting(error)
            else:
                self.outage.over()


def _warn_waiting(error: sa.exc.SQLAlchemyError) -> None:
    log.warning("delivery records wait for the database: %s", type(error).__name__)


def init_app(app: Flask) -> None:
    """Give the app its recorder (after db.init_app, which makes the app's engine)."""
    with app.app_context():
        app.extensions["deliveries"] = Recorder(db.engine)


def recorder() -> Recorder:
    """This web process's recorder."""
    return recorder_of(current_app)


def recorder_of(app: Flask) -> Recorder:
    return app.extensions["deliveries"]


def _in_id_order(
    rows: Callable[[type[Registration]], sa.ColumnElement[bool]],
) -> sa.ColumnElement[bool]:
    """`Registration.id IN` the registrations `rows` picks, locked in the order of their ids
    before the statement this is in changes any of them (see the module docstring).

    PostgreSQL runs the sorted locking subquery ahead of the rows it feeds, so every row the
    outer statement writes was locked by it, in its order. SQLite has no row locks (its
    compiler leaves FOR UPDATE out) and runs one writer at a time.
    """
    locking = aliased(Registration)
    return Registration.id.in_(
        sa.select(locking.id).where(rows(locking)).order_by(locking.id).with_for_update()
    )


def _write_lists(connection: sa.Connection, lists: dict[int, _Listed]) -> None:
    if not lists:
        return
    connection.execute(
        sa.update(Registration)
        .where(Registration.id == sa.bindparam("b_id"))
        .values(
            listed_at=sa.bindparam("b_at", type_=UTCDateTime()),
            listed_tag=sa.bindparam("b_tag", type_=sa.BigInteger()),
            named_at=sa.case(
                # A download after this list answered it: written first, by another process.
                (Registration.fetched_at >= sa.bindparam("b_at"), Registration.named_at),
                # Named again: the latest list is the one a download answers.
                else_=sa.func.coalesce(
                    sa.bindparam("b_named", type_=UTCDateTime()), Registration.named_at
                ),
            ),
        ),
        [
            {"b_id": pk, "b_at": item.at, "b_tag": item.tag, "b_named": item.named_at}
            for pk, item in sorted(lists.items())  # one lock order for every writer
        ],
    )


def _write_fetches(
    connection: sa.Connection,
    fetches: dict[tuple[int, int], list[datetime]],
    keep_unmatched_since: datetime | None,
) -> tuple[list[float], dict[tuple[int, int], list[datetime]]]:
    """Credit the downloads (see Recorder.flush for `keep_unmatched_since`). Returns the
    push-to-fetch seconds of those that answered a push (the first download of the pushed
    version or a later one since the push, once each), and the downloads kept unmatched."""
    latencies: list[float] = []
    kept: dict[tuple[int, int], list[datetime]] = {}
    for (pass_id, tag), moments in _in_credit_steps(fetches):
        at = max(moments)
        # SET reads the row as it was, RETURNING as it is now: whether this download answers
        # the push travels from one to the other in push_answered_at, in the one statement.
        answers_push = sa.and_(
            Registration.push_outcome == str(Outcome.SENT),
            Registration.push_answered_at.is_(None),
            Registration.pushed_tag <= tag,
        )
        values = {
            "fetched_at": at,
            "fetched_tag": tag,
            "named_at": None,
            "push_answered_at": sa.case(
                (answers_push, sa.literal(at, UTCDateTime())),
                else_=Registration.push_answered_at,
            ),
        }
        returned = (Registration.pushed_at, Registration.push_answered_at)
        rows = connection.execute(
            sa.update(Registration)
            .where(Registration.id.in_(_waiting(pass_id, len(moments), at)))
            .values(values)
            .returning(*returned)
        ).all()
        unmatched = sorted(moments)[len(rows) :]
        if keep_unmatched_since is not None:
            recent = [moment for moment in unmatched if moment >= keep_unmatched_since]
            if recent:
                kept.setdefault((pass_id, tag), []).extend(recent)
            unmatched = unmatched[: len(unmatched) - len(recent)]
        if unmatched and not rows:
            rows = connection.execute(
                sa.update(Registration)
                .where(Registration.id == _only_holder(pass_id))
                .values(values)
                .returning(*returned)
            ).all()
        latencies += [
            max(0.0, (at - pushed_at).total_seconds())
            for pushed_at, answered_at in rows
            if pushed_at is not None and answered_at == at
        ]
    return latencies, kept


def _in_credit_steps(
    fetches: dict[tuple[int, int], list[datetime]],
) -> list[tuple[tuple[int, int], list[datetime]]]:
    """The downloads of each pass version, in groups of one CREDIT_STEP, earliest first.

    A group is credited in one statement, at its last moment, so no download is credited
    more than a step late. Credited together at the flush's last moment, a crowd's downloads
    looked up to FLUSH_SECONDS late, and pacing, which reads from them when phones called
    back, took that for a queue at the web tier and pushed at half what it served
    (bench/fanout.py, 20,000 phones of one pass; BENCHMARKS.md).
    """
    steps: dict[tuple[int, int, int], list[datetime]] = {}
    for (pass_id, tag), moments in fetches.items():
        for moment in moments:
            step = int(moment.timestamp() // CREDIT_STEP.total_seconds())
            steps.setdefault((pass_id, tag, step), []).append(moment)
    return [((pass_id, tag), moments) for (pass_id, tag, _), moments in sorted(steps.items())]


def _waiting(pass_id: int, count: int, at: datetime, claim: bool = True) -> sa.Select[Any]:
    """The registrations `count` downloads of the pass, the last made `at`, are credited to
    (see the module docstring): those whose list named it most recently before. A list made
    after a download cannot be what it answers; counted, a crowd's downloads, written a
    second late, went to the lists of phones still to download, and the phones that had
    downloaded stayed named until the crowd thinned (bench/fanout.py, 20,000 phones of one
    pass: pacing read their wait as a queue of 7 s where the p99 request took 1.7 s).
    The moments come from the web processes' clocks, kept within milliseconds of each other
    by NTP, and a download follows its list's answer by a round trip at least.
    A small partial index holds them. `claim`: each taken by one download of a crowd (SKIP
    LOCKED, PostgreSQL)."""
    waiting = (
        sa.select(Registration.id)
        .where(
            Registration.pass_id == pass_id,
            Registration.named_at.is_not(None),
            Registration.named_at <= at,
        )
        .order_by(Registration.named_at.desc())
        .limit(count)
    )
    return waiting.with_for_update(skip_locked=True) if claim else waiting


def _only_holder(pass_id: int) -> sa.ScalarSelect[Any]:
    """The one registration of a pass that has exactly one (two rows read at most)."""
    two = sa.select(Registration.id).where(Registration.pass_id == pass_id).limit(2).subquery()
    return sa.select(sa.func.max(two.c.id)).having(sa.func.count() == 1).scalar_subquery()


def _downloader(pass_id: int, at: datetime, claim: bool = True) -> sa.ColumnElement[Any]:
    """The registration one download of the pass, made `at`, is credited to."""
    waiting = _waiting(pass_id, 1, at, claim).scalar_subquery()
    return sa.func.coalesce(waiting, _only_holder(pass_id))


def record_fetch_failure(pass_id: int, error: str, now: datetime) -> None:
    db.session.execute(
        sa.update(Registration)
        .where(Registration.id == _downloader(pass_id, now))
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
    """Note the failed downloads that Wallet reports in its log on the devices they concern."""
    failures: dict[int, str] = {}
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
            failures[pass_id] = ("Wallet: " + match["error"].strip())[:FETCH_ERROR_LENGTH]
    if not failures:
        return
    # One statement for every pass the log names, locking in id order like the worker: one
    # statement per pass would lock them in the order of the messages. Which device a
    # failure is credited to needs no claim here: no crowd of these races for the rows.
    downloaders = [_downloader(pass_id, now, claim=False) for pass_id in failures]
    db.session.execute(
        sa.update(Registration)
        .where(_in_id_order(lambda r: r.id.in_(downloaders)))
        .values(
            fetch_failed_at=now,
            fetch_error=sa.case(failures, value=Registration.pass_id),
        )
        .execution_options(synchronize_session=False)
    )


def record_pushes(
    connection: sa.Connection,
    pass_type_identifier: str,
    devices_by_token: dict[str, list[int]],
    results: Iterable[PushResult],
    now: datetime,
) -> None:
    """Write a batch's APNs answers on the registrations of the devices pushed, for their
    passes of the type pushed (the push's topic).

    In the worker's finish transaction, before dead tokens' devices are deleted (their
    registrations are counted as removed). One statement for the batch on PostgreSQL, which
    also locks, in id order, the registrations that the deletion's cascade will remove: the
    batch's rows are locked in one statement, in the one order (see the module docstring).
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
    dead_devices = [device for devices in dead.values() for device in devices]
    if dead_devices and connection.dialect.name == "postgresql":
        # A device before its registrations, as an unregistration locks them: the removal
        # below locks these devices, and must not while holding registrations a phone's
        # unregistration (holding its device) waits for. Rare: one round trip more then.
        connection.execute(
            sa.select(Device.id)
            .where(Device.id.in_(dead_devices))
            .order_by(Device.id)
            .with_for_update()
        )
    if rows:
        batch = dead_devices + [row["device"] for row in rows]
        _write_pushes(connection, pass_type_identifier, rows, batch, now)
    if dead:
        # Still holding the dead token: a device that registered again meanwhile (a restored
        # phone) came with a new one and is not removed.
        of_dead = sa.or_(
            *(
                sa.and_(Device.id.in_(devices), Device.push_token == token)
                for token, devices in dead.items()
            )
        )
        going = (
            sa.select(Registration.id)
            .join(Device, Device.id == Registration.device_id)
            .where(of_dead)
            .order_by(Registration.id)
            .with_for_update(of=Registration)  # held already when there were rows to write
        )
        removed = connection.scalar(sa.select(sa.func.count()).select_from(going.subquery()))
        count_event(REMOVED, removed or 0, connection)


# A batch's APNs answers, as record_pushes gives them to _write_pushes.
_ANSWER_COLUMNS = {
    "device": sa.Integer,
    "outcome": sa.String,
    "status": sa.Integer,
    "reason": sa.String,
    "apns_id": sa.String,
}
# On PostgreSQL they travel as one array per column. Each batch then runs the same
# statement, built and compiled once; as a VALUES list of the batch's rows it was built and
# compiled anew for each batch: 58 % of the worker's CPU in bench/fanout.py (BENCHMARKS.md).
_ANSWERS = (
    sa.func.unnest(
        *(sa.cast(sa.bindparam(name), ARRAY(type_)) for name, type_ in _ANSWER_COLUMNS.items())
    )
    .table_valued(*_ANSWER_COLUMNS)
    .render_derived(name="answers")
)


def _pushes_written(answer: Callable[[str], Any], *rows: sa.ColumnElement[bool]) -> sa.Update:
    """The UPDATE that writes answers on the registrations `rows` picks; `answer(column)`
    is where each answer's value comes from. The pushed pass type is bound as `topic`, the
    moment as `now`."""
    pass_tag = sa.select(Pass.update_tag).where(Pass.id == Registration.pass_id).scalar_subquery()
    # The device's passes of other types were not part of this push.
    of_type = (
        sa.select(Pass.id)
        .where(Pass.id == Registration.pass_id, Pass.pass_type_identifier == sa.bindparam("topic"))
        .exists()
    )
    return (
        sa.update(Registration)
        .where(*rows, of_type)
        .values(
            # A phone that downloaded the version before its push was written here has
            # answered it already: its time is not measured, and no later download is taken
            # for its answer.
            push_answered_at=sa.case(
                (Registration.fetched_tag >= pass_tag, Registration.fetched_at)
            ),
            pushed_at=sa.bindparam("now", type_=UTCDateTime()),
            pushed_tag=pass_tag,
            push_outcome=answer("outcome"),
            push_status=answer("status"),
            push_reason=answer("reason"),
            apns_id=answer("apns_id"),
        )
    )


# PostgreSQL: one statement for the batch, its rows locked in id order (record_pushes).
_WRITTEN_AS_BATCH = _pushes_written(
    lambda column: _ANSWERS.c[column],
    Registration.device_id == _ANSWERS.c.device,
    _in_id_order(lambda r: r.device_id.in_(sa.bindparam("batch", expanding=True))),
)
# SQLite runs in-process: one statement per device costs no round trip.
_WRITTEN_PER_DEVICE = _pushes_written(
    sa.bindparam, Registration.device_id == sa.bindparam("device")
)


def _write_pushes(
    connection: sa.Connection,
    pass_type_identifier: str,
    rows: list[dict[str, Any]],
    batch: list[int],
    now: datetime,
) -> None:
    shared = {"topic": pass_type_identifier, "now": now}
    if connection.dialect.name == "postgresql":
        columns = {name: [row[name] for row in rows] for name in _ANSWER_COLUMNS}
        connection.execute(_WRITTEN_AS_BATCH, {**columns, **shared, "batch": batch})
    else:
        connection.execute(_WRITTEN_PER_DEVICE, [{**row, **shared} for row in rows])


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
    recorder().flush()
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
    recorder().flush()
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
