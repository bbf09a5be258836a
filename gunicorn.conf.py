"""gunicorn's settings, read from the working directory (where the Procfile's `web` runs).

Only what the command line cannot say: request metrics that add up across workers. Each
worker counts into files in PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode),
and a scrape of /metrics, whichever worker answers it, adds up every worker's files.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


def on_starting(server: Any) -> None:
    # Set before the workers start, and so before any of them imports prometheus_client,
    # which picks its way of counting once, at import.
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        # A start begins at zero: an earlier run's counts must not be added in.
        for old in Path(folder).glob("*.db"):
            old.unlink()
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="passes-metrics-")


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
