"""Work a process does beside its requests, after a commit asks for it: the inline pusher
and the inline webhook deliverer (PUSH_MODE=inline, the SQLite default, runs no worker)."""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

# A job does what is due and says when to look again unasked: in so many seconds, or never
# (None), until it is asked again.
Job = Callable[[], float | None]


class Rerun:
    """Runs `job` in one background thread when called, and again when called meanwhile.

    Called from a commit, it returns at once. When the process exits (a `flask passes`
    command right after its commit, a web process stopping), or the app is stopped
    (`Runtime.stop`), a job asked for or under way is finished first, for at most
    `finish_seconds`; a nap until the next due time is not waited out.
    """

    def __init__(self, job: Job, name: str, finish_seconds: float = 30.0) -> None:
        self.job = job
        self.name = name
        self.finish_seconds = finish_seconds
        self._lock = threading.Lock()
        self._asked = threading.Event()
        self._exiting = False
        self._thread: threading.Thread | None = None
        atexit.register(self.stop)

    def __call__(self) -> None:
        with self._lock:
            self._asked.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True, name=self.name)
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._asked.clear()
            try:
                wait = self.job()
            except Exception:
                log.exception("%s failed; its work stays queued", self.name)
                wait = None
            with self._lock:
                asked = self._asked.is_set()
                if not asked and (wait is None or self._exiting):
                    self._thread = None
                    return
            if not asked and wait is not None:
                self._asked.wait(wait)

    def stop(self) -> None:
        """Finish what is asked for or under way, then nap no more: later calls run the job
        once each."""
        with self._lock:
            self._exiting = True
            thread = self._thread
        if thread is not None:
            self._asked.set()  # out of a nap: one last look, then out
            thread.join(self.finish_seconds)
