"""Signed .pkpass bytes of recent pass versions, kept in the web process.

When a pass held by many devices changes, every device downloads the same version within
seconds of its push. Signing it once per process instead of once per device is the largest
saving in the update cycle (bench/fanout.py, BENCHMARKS.md). The bytes live in process memory,
not in the database: a hit then costs no query and no database CPU, and a version is signed
at most once per web process, which is a handful of signatures per change.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

# Enough for thousands of recent versions (a pass is typically 5 to 50 KB), small beside a
# web process. The least recently served versions go first.
MAX_BYTES = 64 * 1024 * 1024


class SignedCache:
    """A thread-safe LRU of signed packages, bounded by their total size."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[Any, bytes]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, version: Any) -> bytes | None:
        """The bytes stored for `key`, if they were made from exactly `version`."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != version:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: Hashable, version: Any, data: bytes) -> None:
        """Keep `data` as the bytes of `key` at `version`, replacing an older version."""
        if len(data) > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= len(old[1])
            self._entries[key] = (version, data)
            self._size += len(data)
            while self._size > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._size -= len(evicted)
