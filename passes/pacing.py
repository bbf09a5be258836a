"""Pacing pushes to what the web tier serves.

Every phone a push wakes calls the web service back at once: its serial list, then the pass.
Pushed faster than the web processes answer, the phones' requests queue, time out after 30
seconds at the router, and are tried again on top of new ones (bench/fanout.py, unpaced:
17,020 of 20,000 phones current, 56,872 failed requests). So pushes go out at a rate, in
batches of a fifth of a second's worth, and the rate is either fixed (PUSH_RATE) or, by
default, follows how long the phones take to call back (PUSH_QUEUE_SECONDS):

- While phones call back about as quickly as the quickest seen lately (within half of
  PUSH_QUEUE_SECONDS), the web tier keeps up: the rate grows by a quarter each second it
  was used.
- Once they call back PUSH_QUEUE_SECONDS later than that, their requests are queueing at
  the web tier, which is serving all it can: the rate drops below the rate at which phones
  were calling back, the more so the deeper the queue, so that it drains within
  DRAIN_SECONDS. A fixed fraction (0.8 of the served rate) drained too slowly: what the
  worker sees of the queue is up to two adjustments old, and the queue kept growing meanwhile
  (bench/fanout.py, 20,000 phones: p99 3.3 s against 1.5 s; BENCHMARKS.md).
- Once the queue has drained, the rate goes back to near what the web tier served as the
  queue began, which is what it can serve, and grows from there: by a quarter a second up
  to that rate, by PROBE beyond it, where a queue builds slowly enough for the worker to
  see it before it is deep. Growing back from the drain's rate, a fifth of that, took ten
  seconds of a web tier half idle after each drain (bench/fanout.py, 100,000 own passes:
  110 phones a second where it served 150 to 230).

A phone has called back once its serial list and the downloads the list named are done, as
the web processes record them per registration (passes/delivery.py, written every
Recorder.FLUSH_SECONDS, each download at its moment to within delivery.CREDIT_STEP, far below
PUSH_QUEUE_SECONDS), so the web tier does nothing more for this.
Phones that do not call back (switched off, in Low Power Mode: APNs delivers later) say
nothing about the web tier and slow nothing down; after GIVE_UP_SECONDS they are forgotten.
Each pushing process (a worker, or a web process in inline mode) paces on the phones it
pushed: two workers each settle near half of what the web tier serves.
"""

from __future__ import annotations

import asyncio
import logging
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from models import Registration, utcnow
from passes import outages
from passes.delivery import Recorder
from passes.outages import DATABASE_DOWN

log = logging.getLogger(__name__)

Pause = Callable[[asyncio.Event, float], Awaitable[bool]]
# Which of these devices made a serial list since a moment, and when they last did.
Answers = Callable[[Sequence[int], datetime], dict[int, datetime]]


class CallbackPace:
    """A push rate that follows how long pushed phones take to call back (see above)."""

    START = 50.0  # pushes a second: little for any web tier, and it grows within seconds
    SLOWEST = 5.0
    GROWTH = 1.25  # a second
    PROBE = 1.05  # a second, beyond the rate the web tier served as phones last queued
    # As often as the web processes write when phones called back: more often reads nothing
    # new, and less often lets a queue grow deeper before it is seen.
    ADJUST_SECONDS = Recorder.FLUSH_SECONDS
    GIVE_UP_SECONDS = 20.0
    QUICKEST_SECONDS = 60.0  # how long the quickest callback is remembered
    SERVED_SECONDS = 3.0  # the rate phones call back at, averaged over this
    DRAIN_SECONDS = 2.0  # a queue of phones at the web tier is pushed to drain within this
    DRAIN_FLOOR = 0.2  # of the rate phones call back at: pushing goes on, slowly
    RESUME = 0.9  # of the rate served as a queue began: a margin for a second's noise in it

    def __init__(
        self,
        queue_seconds: float,
        answers: Answers,
        ceiling: float = 0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.queue_seconds = queue_seconds
        self.answers = answers
        self.ceiling = ceiling or math.inf
        self.clock = clock
        self.now = now
        self.rate = min(self.START, self.ceiling)
        # device id -> (monotonic, wall-clock) moment its push was sent
        self.waiting: dict[int, tuple[float, datetime]] = {}
        self.medians: list[float] = []  # of adjustments with answers, QUICKEST_SECONDS back
        self.adjusted_at = -math.inf
        self.sent_since_adjusted = 0
        self.served: list[float] = []  # phones that called back a second, lately
        self.capacity = 0.0  # phones called back a second as they last began to queue
        self.queueing = False

    def sent(self, devices: Iterable[int]) -> None:
        moment = (self.clock(), self.now())
        if not self.waiting:
            self.adjusted_at = moment[0]  # the first verdict on these a second from now
        for device in devices:
            self.waiting[device] = moment
            self.sent_since_adjusted += 1

    def adjust(self) -> None:
        """Once per ADJUST_SECONDS: read which phones called back, and when; set the rate."""
        elapsed = self.clock() - self.adjusted_at
        if elapsed < self.ADJUST_SECONDS or not self.waiting:
            return
        self.adjusted_at = self.clock()
        used = self.sent_since_adjusted >= self.rate * elapsed / 2
        self.sent_since_adjusted = 0
        try:
            answered = self.answers(list(self.waiting), min(w for _, w in self.waiting.values()))
        except DATABASE_DOWN:
            return  # no news; the drain itself waits the outage out
        delays = []
        for device, listed_at in answered.items():
            sent_at = self.waiting[device][1]
            if listed_at >= sent_at:
                delays.append((listed_at - sent_at).total_seconds())
                del self.waiting[device]
        given_up = self.clock() - self.GIVE_UP_SECONDS
        for device in [d for d, (at, _) in self.waiting.items() if at < given_up]:
            del self.waiting[device]
        # Averaged over a few seconds: the web processes' records arrive in lumps.
        self.served = self._recent(self.served, len(delays) / elapsed, self.SERVED_SECONDS)
        if not delays:
            queueing = 0.0  # no phone calling back is no sign of queueing: asleep, or none due
        else:
            median = statistics.median(delays)
            self.medians = self._recent(self.medians, median, self.QUICKEST_SECONDS)
            queueing = self.medians[-1] - min(self.medians)
        was_queueing, self.queueing = self.queueing, queueing > self.queue_seconds
        if self.queueing:
            served = statistics.mean(self.served)
            if not was_queueing:
                # As the queue began: later, phones it held call back on top of those served.
                self.capacity = served
            drain = max(self.DRAIN_FLOOR, 1 - queueing / self.DRAIN_SECONDS)
            self.rate = min(self.ceiling, max(self.SLOWEST, served * drain))
            log.info(
                "phones call back %.1f s later than at best, %.0f a second: pushing %.0f a second",
                queueing,
                served,
                self.rate,
            )
        elif used and queueing <= self.queue_seconds / 2:
            known = self.capacity or math.inf  # no queue seen yet: the first climb
            if self.rate < known:
                growth = self.GROWTH**self.ADJUST_SECONDS
                grown = max(self.capacity * self.RESUME, min(self.rate * growth, known))
            else:
                grown = self.rate * self.PROBE**self.ADJUST_SECONDS
            self.rate = min(self.ceiling, grown)
        log.debug(
            "pace: %d called back in %.1f s, %.2f s later than at best, %s; pushing %.0f a second",
            len(delays),
            elapsed,
            queueing,
            "rate used" if used else "rate not used",
            self.rate,
        )

    def _recent(self, values: list[float], latest: float, seconds: float) -> list[float]:
        """`values` and then `latest`, as many as the adjustments of the last `seconds`."""
        kept = max(1, round(seconds / self.ADJUST_SECONDS))
        return [*values, latest][-kept:]


def answered_since(engine: sa.Engine) -> Answers:
    """CallbackPace's answers, from the registrations' delivery records: a device has called
    back once its serial list came after the moment and every pass the list named has been
    downloaded since; it answered at the later of the two. Counting the download matters:
    a list costs the web tier a fraction of a signed download, so lists answer promptly while
    the downloads behind them queue (bench/fanout.py, 100,000 own passes: phones 'calling
    back' at 600 a second by their lists, where the web tier served 190)."""

    def answers(devices: Sequence[int], since: datetime) -> dict[int, datetime]:
        found: dict[int, datetime] = {}
        with engine.connect() as connection:
            for start in range(0, len(devices), 1000):
                rows = connection.execute(
                    sa.select(
                        Registration.device_id,
                        sa.func.max(Registration.listed_at),
                        sa.func.max(Registration.fetched_at),
                    )
                    .where(Registration.device_id.in_(devices[start : start + 1000]))
                    .where(Registration.listed_at >= since)
                    .group_by(Registration.device_id)
                    .having(sa.func.count(Registration.named_at) == 0)  # none still to fetch
                )
                found.update(
                    {device: max(listed, fetched or listed) for device, listed, fetched in rows}
                )
        return found

    return answers


@dataclass
class Pacer:
    """When the next batch may go, and how big it may be, at a fixed `rate` (0: unpaced)
    or at the rate `callbacks` sets.

    Batches hold at most STEP seconds' worth, so the phones call in small steps instead of
    bursts. A batch of n pushes started at t lets the next start at t + n / rate; one that
    took longer than its share earns no credit.
    """

    fixed_rate: float
    callbacks: CallbackPace | None = None
    clock: Callable[[], float] = time.monotonic
    pause: Pause = outages.pause
    next_start: float = -math.inf

    STEP = 0.2  # seconds: five claims a second cost the database little

    @property
    def rate(self) -> float:
        return self.callbacks.rate if self.callbacks else self.fixed_rate

    def batch_size(self, limit: int) -> int:
        if not self.rate:
            return limit
        return max(1, min(limit, int(self.rate * self.STEP)))

    async def wait(self, stop: asyncio.Event) -> bool:
        """Wait for the next batch's turn; True when asked to stop."""
        if self.callbacks:
            self.callbacks.adjust()
        delay = self.next_start - self.clock()
        if delay > 0:
            return await self.pause(stop, delay)
        return stop.is_set()

    def started(self, devices: Sequence[int]) -> None:
        if self.rate:
            self.next_start = self.clock() + len(devices) / self.rate
        if self.callbacks:
            self.callbacks.sent(devices)


def from_config(config: Any, engine: sa.Engine) -> Pacer:
    """PUSH_QUEUE_SECONDS's pace, up to PUSH_RATE; PUSH_RATE's alone when it is 0."""
    queue_seconds, rate = config["PUSH_QUEUE_SECONDS"], config["PUSH_RATE"]
    if not queue_seconds:
        return Pacer(rate)
    return Pacer(rate, CallbackPace(queue_seconds, answered_since(engine), ceiling=rate))
