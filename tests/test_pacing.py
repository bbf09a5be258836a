"""Pacing: PUSH_RATE and the callback window, checked on a clock the test drives (no waiting)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask

from models import Device, Registration, db, utcnow
from passes import pushing
from passes.delivery import Recorder
from passes.pacing import CallbackPace, Pacer, answered_since
from tests.apns_server import FakeApns
from tests.delivery_phones import Phone, create_pass, phone, states
from tests.pushes import patch, pending, seed_devices, wait_until


class FakeClock:
    """Time that moves only when the pacer pauses; each pause is recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def pause(self, stop: asyncio.Event, seconds: float) -> bool:
        self.pauses.append(round(seconds, 6))
        self.now += seconds
        return stop.is_set()


def test_a_batch_holds_at_most_a_fifth_of_a_second_of_pushes() -> None:
    assert Pacer(0).batch_size(1000) == 1000  # unpaced
    assert Pacer(250).batch_size(1000) == 50
    assert Pacer(5000).batch_size(1000) == 1000
    assert Pacer(0.5).batch_size(1000) == 1


def test_the_next_batch_starts_when_the_last_ones_pushes_are_due() -> None:
    clock = FakeClock()
    pacer = Pacer(100, clock=clock, pause=clock.pause)
    stop = asyncio.Event()
    pacer.started(list(range(100)))  # at t=0: the next batch may start at t=1
    clock.now = 0.25  # sending took a quarter of a second
    assert asyncio.run(pacer.wait(stop)) is False
    assert clock.pauses == [0.75]
    pacer.started(list(range(40)))  # at t=1: next at t=1.4
    clock.now = 3.0  # this batch took far longer than its share...
    asyncio.run(pacer.wait(stop))
    assert clock.pauses == [0.75]  # ...so the next starts at once,
    pacer.started(list(range(100)))
    asyncio.run(pacer.wait(stop))
    assert clock.pauses == [0.75, 1.0]  # but the lateness buys no burst after it


def test_a_paced_drain_sends_batches_a_rate_apart(push_app: Flask, apns: FakeApns) -> None:
    seed_devices(push_app, 250)
    patch(push_app)
    clock = FakeClock()
    with push_app.app_context():
        push_app.config["PUSH_BATCH_SIZE"] = 1000
        summary = pushing.drain_now(pacer=Pacer(100, clock=clock, pause=clock.pause))
    assert summary.sent == 250
    assert len(apns.requests) == 250
    # Twelve batches of 20 a fifth of a second apart, then one of 10; then a wait of 0.1 s,
    # its 10 pushes' share, before the drain looks again and finds nothing left.
    assert clock.pauses == pytest.approx([0.2] * 12 + [0.1])


def test_an_unpaced_drain_never_waits(push_app: Flask, apns: FakeApns) -> None:
    seed_devices(push_app, 120)
    patch(push_app)
    clock = FakeClock()
    with push_app.app_context():
        assert pushing.drain_now(pacer=Pacer(0, clock=clock, pause=clock.pause)).sent == 120
    assert clock.pauses == []


def test_the_inline_pusher_keeps_the_pace(make_app: Callable[..., Flask], apns: FakeApns) -> None:
    app = make_app(APNS_URL=apns.url, APNS_CA_FILE=apns.ca_file, PUSH_MODE="inline", PUSH_RATE=40)
    inline = app.extensions["pass_server"].inline_pusher
    assert inline.pacer.rate == 40  # from the setting
    clock = FakeClock()
    inline.pacer = Pacer(40, clock=clock, pause=clock.pause)
    seed_devices(app, 100)
    patch(app)
    apns.wait_for(100, timeout=30)
    # The drain ends after a last pause, when it looks again and finds nothing left.
    wait_until(lambda: pending(app) == 0 and len(clock.pauses) >= 13, timeout=30)
    assert clock.pauses == pytest.approx([0.2] * 12 + [0.1])  # 12 batches of 8, then 4


# --- the callback window --------------------------------------------------------------------

EPOCH = datetime(2026, 11, 30, 12, tzinfo=UTC)


class Listings:
    """A window's answers as the test decides them: when each device last listed."""

    def __init__(self) -> None:
        self.at: dict[int, datetime] = {}
        self.down = False

    def __call__(self, devices: Sequence[int], since: datetime) -> dict[int, datetime]:
        if self.down:
            raise sa.exc.OperationalError("SELECT", {}, Exception("connection refused"))
        return {d: self.at[d] for d in devices if d in self.at and self.at[d] >= since}

    def call_back(self, devices: Iterable[int], seconds: float) -> None:
        """These devices list `seconds` after EPOCH."""
        for device in devices:
            self.at[device] = EPOCH + timedelta(seconds=seconds)


def pace_on(clock: FakeClock, listings: Listings, adjust_seconds: float = 1.0) -> CallbackPace:
    """A pace of PUSH_QUEUE_SECONDS 1, adjusted every `adjust_seconds`: whole seconds keep
    the arithmetic of most tests plain (its growth is per second, whatever the period)."""
    pace = CallbackPace(
        1.0, listings, clock=clock, now=lambda: EPOCH + timedelta(seconds=clock.now)
    )
    pace.ADJUST_SECONDS = adjust_seconds
    return pace


def test_the_pace_grows_while_phones_call_back_promptly() -> None:
    clock, listings = FakeClock(), Listings()
    pace = pace_on(clock, listings)
    assert pace.rate == CallbackPace.START == 50
    pace.sent(range(50))
    listings.call_back(range(50), 0.1)
    clock.now = 0.5
    pace.adjust()
    assert pace.rate == 50  # not yet: adjusted only once per ADJUST_SECONDS
    clock.now = 1.0
    pace.adjust()
    assert pace.rate == 62.5
    assert pace.waiting == {}


def test_the_pace_grows_by_a_quarter_a_second_as_often_as_phones_are_recorded() -> None:
    # Adjusted as often as the web processes write their records: the sooner the pace sees
    # a queue, the shallower it is (BENCHMARKS.md); the growth is per second all the same.
    assert CallbackPace.ADJUST_SECONDS == Recorder.FLUSH_SECONDS < 1
    clock, listings = FakeClock(), Listings()
    pace = pace_on(clock, listings, adjust_seconds=CallbackPace.ADJUST_SECONDS)
    sent = adjustments = 0
    while clock.now < 2:
        phones = range(sent, sent + math.ceil(pace.rate * pace.ADJUST_SECONDS))
        pace.sent(phones)
        listings.call_back(phones, clock.now + 0.1)
        sent = phones.stop
        clock.now += pace.ADJUST_SECONDS
        pace.adjust()
        adjustments += 1
    assert adjustments == 2 / CallbackPace.ADJUST_SECONDS > 2
    assert pace.rate == pytest.approx(50 * 1.25**2)


def test_an_unused_pace_does_not_grow() -> None:
    clock, listings = FakeClock(), Listings()
    pace = pace_on(clock, listings)
    pace.sent(range(10))  # a fifth of what the pace allowed in the second
    listings.call_back(range(10), 0.1)
    clock.now = 1.0
    pace.adjust()
    assert pace.rate == 50


def test_phones_calling_back_a_queue_later_than_at_best_slow_the_pace_to_drain_it() -> None:
    clock, listings = FakeClock(), Listings()
    pace = pace_on(clock, listings)  # PUSH_QUEUE_SECONDS 1
    pace.sent(range(50))
    listings.call_back(range(50), 0.1)  # the quickest: 0.1 s
    clock.now = 1.0
    pace.adjust()  # 62.5
    pace.sent(range(50, 113))  # at t = 1
    listings.call_back(range(50, 113), 1.5)  # 0.5 s: 0.4 s slower, no more than half of 1 s
    clock.now = 2.0
    pace.adjust()
    assert pace.rate == 78.125
    pace.sent(range(113, 200))  # at t = 2
    listings.call_back(range(113, 150), 2.9)  # 0.9 s: within 1 s, but not within half
    clock.now = 3.0
    pace.adjust()
    assert pace.rate == 78.125  # held
    pace.sent(range(200, 280))  # at t = 3
    listings.call_back(range(150, 200), 3.3)  # 1.3 s: 1.2 s of queueing at the web tier
    clock.now = 4.0
    pace.adjust()
    # Called back lately: 50, 63, 37 and 50 a second. The queue, 1.2 s deep, is to drain
    # within DRAIN_SECONDS (2): pushed at 1 - 1.2 / 2 of the last three's mean.
    assert pace.rate == pytest.approx(0.4 * (63 + 37 + 50) / 3)
    listings.call_back(range(200, 280), 6.0)  # 3 s: the queue grew; more called back
    clock.now = 5.0
    pace.adjust()
    # Deeper than DRAIN_SECONDS: the floor, a fifth, so pushing goes on while it drains.
    assert pace.rate == pytest.approx(0.2 * (37 + 50 + 80) / 3)
    pace.sent(range(280, 291))  # at t = 5, all the pace allows
    listings.call_back(range(280, 291), 5.2)  # 0.2 s: drained
    clock.now = 6.0
    pace.adjust()
    # Back to near what the web tier served as the queue began (the 80 a second after it
    # were phones the queue had held), not a quarter more than 11 ...
    capacity = (63 + 37 + 50) / 3
    assert pace.rate == pytest.approx(CallbackPace.RESUME * capacity)
    for second, rate in enumerate([capacity, capacity * 1.05, capacity * 1.05**2], start=7):
        phones = range(300 + 100 * second, 300 + 100 * second + int(pace.rate) + 1)
        pace.sent(phones)
        listings.call_back(phones, second - 0.8)  # promptly
        clock.now = second
        pace.adjust()
        # ... up to it by a quarter a second, and beyond it by a twentieth.
        assert pace.rate == pytest.approx(rate)


def test_phones_that_never_call_back_slow_nothing_down_and_are_forgotten() -> None:
    clock, listings = FakeClock(), Listings()
    pace = pace_on(clock, listings)
    pace.sent(range(50))  # switched off, all of them
    clock.now = 1.0
    pace.adjust()
    assert pace.rate == 62.5  # silence is no sign of queueing
    clock.now = 2.0
    pace.adjust()
    assert len(pace.waiting) == 50
    clock.now = CallbackPace.GIVE_UP_SECONDS + 0.5
    pace.adjust()
    assert pace.waiting == {}  # APNs keeps their pushes until they are back


def test_a_database_outage_leaves_the_pace_as_it_was() -> None:
    clock, listings = FakeClock(), Listings()
    pace = pace_on(clock, listings)
    pace.sent(range(50))
    listings.call_back(range(50), 0.1)
    listings.down = True
    clock.now = 1.0
    pace.adjust()
    assert (pace.rate, len(pace.waiting)) == (50, 50)


def test_the_pace_stays_under_push_rate() -> None:
    clock, listings = FakeClock(), Listings()
    pace = CallbackPace(1.0, listings, ceiling=55, clock=clock)
    pace.sent(range(50))
    clock.now = 1.0
    pace.adjust()
    assert pace.rate == 55


def test_a_drain_follows_the_callback_pace() -> None:
    clock, listings = FakeClock(), Listings()
    pacer = Pacer(0, pace_on(clock, listings), clock=clock, pause=clock.pause)
    stop = asyncio.Event()
    assert pacer.batch_size(1000) == 10  # a fifth of a second at 50 a second
    pacer.started(list(range(10)))
    assert asyncio.run(pacer.wait(stop)) is False
    assert clock.pauses == pytest.approx([0.2])


def test_a_phone_has_answered_once_its_list_and_the_downloads_it_named_are_done(
    push_app: Flask,
) -> None:
    # A pass each: a download names no device, and of several holding one pass it is
    # credited to the one that listed first (passes/delivery.py), which would blur this.
    phones = [phone(push_app, index) for index in range(4)]
    for index, one in enumerate(phones):
        create_pass(push_app, f"own-{index}")
        assert one.register(f"own-{index}") == 201
    phones[0].woken()  # before the moment
    recorder = push_app.extensions["deliveries"]
    recorder.flush()
    since = utcnow()
    phones[1].woken()  # listed, then downloaded what the list named
    assert phones[2].list_changed() == ["own-2"]  # listed; its download still to come
    phones[3].woken()
    assert phones[3].list_changed() == []  # listed again, nothing to download
    recorder.flush()
    with push_app.app_context():
        ids = device_ids(phones)
        found = answered_since(db.engine)(list(ids.values()), since)
        assert set(found) == {ids[phones[1].library_id], ids[phones[3].library_id]}
        fetched_at = db.session.scalar(
            sa.select(Registration.fetched_at).where(
                Registration.device_id == ids[phones[1].library_id]
            )
        )
        assert found[ids[phones[1].library_id]] == fetched_at  # the later of the two
    assert phones[2].fetch("own-2") == 200
    recorder.flush()
    with push_app.app_context():
        found = answered_since(db.engine)(list(ids.values()), since)
    assert ids[phones[2].library_id] in found


class CallingBack(FakeClock):
    """Time moves only in pauses, and in each pause the phones pushed since call back as
    Wallet does (a serial list through the web service, recorded as the web processes do)."""

    def __init__(self, app: Flask, apns: FakeApns, phones: list[Phone]) -> None:
        super().__init__()
        self.app, self.apns = app, apns
        self.by_token = {one.push_token: one for one in phones}
        self.called: set[str] = set()
        self.pushed_before_callback: list[int] = []

    async def pause(self, stop: asyncio.Event, seconds: float) -> bool:
        tokens = [request.token for request in self.apns.requests]
        for token in tokens:
            if token not in self.called:
                self.pushed_before_callback.append(len(tokens))
                self.called.add(token)
                self.by_token[token].woken()
        self.app.extensions["deliveries"].flush()
        return await super().pause(stop, seconds)


def test_a_drain_paces_on_the_calls_back_of_real_phones(push_app: Flask, apns: FakeApns) -> None:
    create_pass(push_app, "pushed")
    phones = [phone(push_app, index) for index in range(12)]
    for one in phones:
        assert one.register("pushed") == 201
    patch(push_app)
    clock = CallingBack(push_app, apns, phones)
    with push_app.app_context():
        # Real delays, which a loaded machine stretches: no queueing verdict from them here.
        pace = CallbackPace(60, answered_since(db.engine), clock=clock)
        pace.rate = 10  # two phones a batch
        summary = pushing.drain_now(pacer=Pacer(0, pace, clock=clock, pause=clock.pause))
    assert summary.sent == 12
    assert states(push_app, "pushed") == {one.library_id: "current" for one in phones}
    # Each phone's serial list, recorded by the web process, told the pace it called back
    # (within moments: no queueing), and the pace grew as it was used.
    clock.now += CallbackPace.ADJUST_SECONDS
    pace.adjust()
    assert pace.waiting == {}
    assert pace.medians and max(pace.medians) < 5
    assert pace.rate > 10
    # Pushed in batches of a fifth of a second's worth: two at 10 a second, to begin with.
    assert clock.pushed_before_callback[:2] == [2, 2]


def device_ids(phones: list[Phone]) -> dict[str, int]:
    """{library id: device row id}, in an app context."""
    rows = db.session.execute(
        sa.select(Device.device_library_identifier, Device.id).where(
            Device.device_library_identifier.in_([one.library_id for one in phones])
        )
    )
    return {library_id: pk for library_id, pk in rows}
