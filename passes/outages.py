"""Riding out database outages: what counts as one, and how long to wait between tries.

Long-running loops (the push worker, webhook delivery) catch these errors around each step,
log once, wait, and go on, instead of dying when PostgreSQL or PgBouncer restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

import sqlalchemy as sa

log = logging.getLogger(__name__)

# Waits between attempts while the database is unreachable: doubling, with a cap so that
# the worker notices within seconds when it is back.
OUTAGE_FIRST_WAIT = 0.5
OUTAGE_MAX_WAIT = 15.0
# What the driver raises when the database (or the pooler in front of it) is unreachable or
# restarting. Anything else is a bug and ends the worker loudly.
DATABASE_DOWN = (sa.exc.OperationalError, sa.exc.InterfaceError)


async def pause(stop: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds` unless asked to stop first; True when asked to stop."""
    if seconds > 0 and not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


def _first_line(error: Exception) -> str:
    # The driver's own message, without SQLAlchemy's statement; only its first line, as
    # later lines (DETAIL) can quote row values.
    message = str(getattr(error, "orig", None) or error).strip()
    return message.splitlines()[0] if message else type(error).__name__


class Outage:
    """The database is unreachable: one warning when that starts, one line when it ends, and
    growing waits between attempts (each retry's error says nothing new)."""

    def __init__(self, waiting: str = "pushes") -> None:
        self.waiting = waiting  # what the outage holds up, for the log
        self.failures = 0
        self.since = 0.0
        # Its own generator: a thread drawing from the module's shared one would change what
        # other code (a test's seeded data, say) draws next.
        self._random = random.Random()

    def failed(self, error: Exception) -> float:
        """Note a failed attempt; return how many seconds to wait before the next."""
        if not self.failures:
            self.since = time.monotonic()
            log.warning(
                "database unavailable, %s wait until it is back: %s",
                self.waiting,
                _first_line(error),
            )
        self.failures += 1
        ceiling = min(OUTAGE_MAX_WAIT, OUTAGE_FIRST_WAIT * 2 ** (self.failures - 1))
        # Jitter, so that several workers do not all knock at the same moment.
        return ceiling * self._random.uniform(0.5, 1.0)

    def over(self) -> None:
        if self.failures:
            log.info(
                "database back after %.1f s (%d failed attempts)",
                time.monotonic() - self.since,
                self.failures,
            )
            self.failures = 0
