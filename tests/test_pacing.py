"""PUSH_RATE: pushes spread over time, checked on a clock the test drives (no waiting)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from flask import Flask

from passes import pushing
from passes.pushing import Pacer
from tests.apns_server import FakeApns
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
    pacer.started(100)  # at t=0: the next batch may start at t=1
    clock.now = 0.25  # sending took a quarter of a second
    assert asyncio.run(pacer.wait(stop)) is False
    assert clock.pauses == [0.75]
    pacer.started(40)  # at t=1: next at t=1.4
    clock.now = 3.0  # this batch took far longer than its share...
    asyncio.run(pacer.wait(stop))
    assert clock.pauses == [0.75]  # ...so the next starts at once,
    pacer.started(100)
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
