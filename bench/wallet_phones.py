"""Simulated iPhones for bench/fanout.py: what Wallet does with a pass, on asyncio.

Each phone registers for its pass (POST registration with its push token), learns the update
tag from the serial list, and holds the pass's Last-Modified. When pushed it does what Wallet
does: GET the serial list with `passesUpdatedSince=<tag>`, then each listed pass with
`If-Modified-Since`. Each request has 30 s; after a 5xx, a timeout, or a connection reset or
refused, the phone tries that request again 1-3 s later, up to 5 attempts in all.

Every request is its own TCP connection, as gunicorn's sync workers close each one anyway and
as phones are separate machines. The one approximation: this process has a file-descriptor
limit and 127.0.0.1 has ~28,000 ephemeral ports, so at most `max_connections` requests are
on the wire at once; a request waiting for one of those slots is already on its 30 s clock,
as a phone queued in front of a busy server would be. The longest such wait is reported.
"""

from __future__ import annotations

import asyncio
import errno
import io
import json
import random
import time
import zipfile
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

REQUEST_TIMEOUT = 30.0
ATTEMPTS = 5
RETRY_AFTER = (1.0, 3.0)  # seconds, uniformly at random
HOST = "127.0.0.1"
# Errors that mean this process ran out of something, not that the server failed.
LOCAL_LIMITS = {errno.EADDRNOTAVAIL, errno.EMFILE, errno.ENFILE, errno.ENOBUFS}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


async def http_request(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> Reply:
    """One HTTP/1.1 request on a connection of its own, read until the server closes it."""
    lines = [f"{method} {path} HTTP/1.1", "Host: passes.example.test", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method in ("POST", "PATCH", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[bytes] = loop.create_future()
    transport, _ = await loop.create_connection(lambda: _Exchange(request, answered), HOST, port)
    try:
        return _parse(await answered)
    finally:
        transport.abort()  # at once, whatever happened (a timeout cancels us here)


class _Exchange(asyncio.Protocol):
    """Send the request, collect the answer until the server closes the connection (gunicorn's
    sync workers always do). A bare protocol: the phones' requests are most of this process's
    work, and this does no more than they need."""

    def __init__(self, request: bytes, answered: asyncio.Future[bytes]) -> None:
        self.request = request
        self.answered = answered
        self.received = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.received += data

    def connection_lost(self, exc: Exception | None) -> None:
        if self.answered.done():
            return
        if exc is not None:
            self.answered.set_exception(exc)
        else:
            self.answered.set_result(bytes(self.received))


def _parse(raw: bytes) -> Reply:
    head, separator, content = raw.partition(b"\r\n\r\n")
    if not separator:
        raise ConnectionResetError("the connection closed before a whole answer came")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    if length is not None and len(content) < int(length):
        raise ConnectionResetError("the connection closed in the middle of the body")
    return Reply(int(status_line.split(" ", 2)[1]), headers, content)


def http_seconds(value: str) -> float:
    """An HTTP date (Last-Modified) as seconds since the epoch."""
    return parsedate_to_datetime(value).timestamp()


@dataclass(eq=False)
class Phone:
    device_id: str
    push_token: str
    serial: str  # of the one pass it holds
    authorization: str  # "ApplePass <authenticationToken>"
    tag: str = ""  # lastUpdated of the serial list it last read
    last_modified: str = ""  # of the version it holds
    version_before_change: float = 0.0  # Last-Modified it held when the change was made
    pushed_at: float | None = None
    current_at: float | None = None
    busy: bool = False
    pushed_again: bool = False


@dataclass
class Expectation:
    """What the new version looks like: newer than what each phone held, and (shared-pass)
    this text in its pass.json."""

    marker: str | None = None


@dataclass
class Stats:
    """Device requests of one phase, as phones saw them."""

    requests: Counter[str] = field(default_factory=Counter)  # "serial list 200", "pass 304" ...
    failures: Counter[str] = field(default_factory=Counter)  # "5xx", "timeout", "reset" ...
    latencies: list[float] = field(default_factory=list)  # every attempt, failed ones too
    gave_up: int = 0  # requests that failed every attempt
    longest_wait_for_connection: float = 0.0  # the approximation above, in seconds

    @property
    def attempts(self) -> int:
        return sum(self.requests.values()) + sum(
            count for kind, count in self.failures.items() if kind in CONNECTION_FAILURES
        )

    def percentile(self, share: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# Failures where no answer came back at all (the others are answers: 5xx, wrong ones).
CONNECTION_FAILURES = ("timeout", "reset", "refused", "connection error", "bench: local limit")


class Fleet:
    """The phones, the requests they make, and how far the current change has reached them."""

    def __init__(
        self, phones: list[Phone], port: int, pass_type_identifier: str, max_connections: int
    ):
        self.phones = phones
        self.by_token = {phone.push_token: phone for phone in phones}
        self.port = port
        self.pass_type_identifier = pass_type_identifier
        self.connections = asyncio.Semaphore(max_connections)
        self.stats = Stats()
        self.expectation = Expectation()
        self.current = 0  # phones holding the new version
        self.pushed = 0  # phones pushed at least once
        self.pushes_for_unknown_tokens = 0
        self.repeated_pushes = 0
        self.last_activity = time.monotonic()
        self._all_current = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- before the change: register, learn the tag -------------------------------------

    async def register_all(self, concurrency: int) -> None:
        """Every phone registers for its pass through the device web service."""

        async def register(phone: Phone) -> None:
            path = (
                f"/wallet/v1/devices/{phone.device_id}/registrations/"
                f"{self.pass_type_identifier}/{phone.serial}"
            )
            body = json.dumps({"pushToken": phone.push_token}).encode()
            headers = {"Authorization": phone.authorization, "Content-Type": "application/json"}
            reply = await self.request("registration", "POST", path, headers, body)
            if reply is None or reply.status not in (200, 201):
                raise RuntimeError(f"registration failed: {reply and reply.status}")

        await self._each(register, concurrency)

    async def learn_tags(self, concurrency: int) -> None:
        """Every phone reads its serial list once, as Wallet does after adding a pass."""

        async def learn(phone: Phone) -> None:
            reply = await self.request("serial list", "GET", self._serials_path(phone), {})
            if reply is None or reply.status != 200:
                raise RuntimeError(f"first serial list failed: {reply and reply.status}")
            document = json.loads(reply.body)
            if document["serialNumbers"] != [phone.serial]:
                raise RuntimeError(f"phone of {phone.serial} was listed {document}")
            phone.tag = document["lastUpdated"]

        await self._each(learn, concurrency)

    async def _each(self, work: Callable[[Phone], Awaitable[None]], concurrency: int) -> None:
        """`work` for every phone, `concurrency` phones at a time."""
        phones = iter(self.phones)

        async def one_after_another() -> None:
            for phone in phones:  # shared: each phone is taken once
                await work(phone)

        await asyncio.gather(*(one_after_another() for _ in range(concurrency)))

    async def warm_up(self, phones: int) -> None:
        """A few phones' requests, uncounted and changing nothing, before the clock starts: so
        that each server process has its database connections and templates loaded, as a
        service that has been running has. (The pass is asked for without If-Modified-Since,
        so the app builds it.)"""

        async def ask(phone: Phone) -> None:
            await http_request(self.port, "GET", self._serials_path(phone), {})
            headers = {"Authorization": phone.authorization}
            await http_request(self.port, "GET", self._pass_path(phone.serial), headers)

        await asyncio.gather(*(ask(phone) for phone in self.phones[:phones]))

    # --- the change ------------------------------------------------------------------------

    def expect(self, expectation: Expectation) -> None:
        """Start counting who holds the next version; call before the change is made."""
        self.stats = Stats()
        self.expectation = expectation
        self.current = self.pushed = 0
        self.pushes_for_unknown_tokens = self.repeated_pushes = 0
        self._all_current.clear()
        for phone in self.phones:
            phone.version_before_change = http_seconds(phone.last_modified)
            phone.pushed_at = phone.current_at = None
            phone.pushed_again = False

    def on_push(self, token: str) -> None:
        """APNs delivered a push to this phone: Wallet asks what changed."""
        phone = self.by_token.get(token)
        self.last_activity = time.monotonic()
        if phone is None:
            self.pushes_for_unknown_tokens += 1
            return
        if phone.pushed_at is None:
            phone.pushed_at = self.last_activity
            self.pushed += 1
        else:
            self.repeated_pushes += 1
        if phone.busy:
            phone.pushed_again = True  # asks once more when it is done
            return
        self._spawn(self._on_push(phone))

    def wake_all(self, in_flight: int) -> None:
        """As if every phone were pushed, keeping at most `in_flight` of them busy at once
        (the baseline has no worker to push)."""

        async def wake(phone: Phone) -> None:
            phone.pushed_at = time.monotonic()
            self.pushed += 1
            await self._on_push(phone)

        self._spawn(self._each(wake, in_flight))

    async def wait_all_current(self, deadline: float, stall: float) -> str:
        """Until every phone holds the new version, or the deadline (monotonic) passes, or
        every phone has been pushed, none is busy and nothing (no push, no answer) has
        happened for `stall` seconds; says which. (A phone never pushed may yet be: a paced
        or retrying worker has it. Only the deadline gives up on it.)"""
        while True:
            try:
                await asyncio.wait_for(self._all_current.wait(), timeout=0.5)
                return "every phone current"
            except TimeoutError:
                pass
            now = time.monotonic()
            if now >= deadline:
                return "deadline reached"
            quiet = now - self.last_activity >= stall
            if quiet and self.pushed == len(self.phones) and not self._busy():
                return f"nothing happened for {stall:.0f} s"

    async def stop(self) -> None:
        """Cancel phones still working (retrying after the deadline, say)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- what Wallet does on a push ----------------------------------------------------------

    async def _on_push(self, phone: Phone) -> None:
        phone.busy = True
        try:
            while True:
                phone.pushed_again = False
                await self._update(phone)
                if not phone.pushed_again:
                    return
        finally:
            phone.busy = False

    async def _update(self, phone: Phone) -> None:
        listed = await self.request("serial list", "GET", self._serials_path(phone), {})
        if listed is None:
            return
        if listed.status == 204:
            if phone.current_at is None:
                self.stats.failures["told 204 (nothing new) while stale"] += 1
            return
        if listed.status != 200:
            return
        document = json.loads(listed.body)
        for serial in document["serialNumbers"]:
            if serial != phone.serial:
                self.stats.failures["listed a pass it does not hold"] += 1
                return
            headers = {
                "Authorization": phone.authorization,
                "If-Modified-Since": phone.last_modified,
            }
            reply = await self.request("pass", "GET", self._pass_path(serial), headers)
            if reply is None or reply.status not in (200, 304):
                return
            if reply.status == 200:
                if not self._is_the_pass(reply, serial):
                    return
                phone.last_modified = reply.headers["last-modified"]
        phone.tag = document["lastUpdated"]
        if phone.current_at is None and self._holds_new_version(phone):
            phone.current_at = time.monotonic()
            self.current += 1
            if self.current == len(self.phones):
                self._all_current.set()

    def _is_the_pass(self, reply: Reply, serial: str) -> bool:
        try:
            with zipfile.ZipFile(io.BytesIO(reply.body)) as package:
                pass_json = package.read("pass.json")
            ok = (
                json.loads(pass_json)["serialNumber"] == serial and "last-modified" in reply.headers
            )
        except (zipfile.BadZipFile, KeyError, ValueError):
            ok = False
        marker = self.expectation.marker
        if ok and marker is not None:
            ok = marker.encode() in pass_json
        if not ok:
            self.stats.failures["a 200 without the expected pass"] += 1
        return ok

    def _holds_new_version(self, phone: Phone) -> bool:
        # A 200 for the pass is not enough: it must be a version made after the change.
        return http_seconds(phone.last_modified) > phone.version_before_change

    def _pass_path(self, serial: str) -> str:
        return f"/wallet/v1/passes/{self.pass_type_identifier}/{serial}"

    def _serials_path(self, phone: Phone) -> str:
        path = f"/wallet/v1/devices/{phone.device_id}/registrations/{self.pass_type_identifier}"
        return f"{path}?passesUpdatedSince={phone.tag}" if phone.tag else path

    # --- one request, as a phone makes it ------------------------------------------------------

    async def request(
        self, kind: str, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> Reply | None:
        """The answer (any status below 500), or None once every attempt failed."""
        for attempt in range(1, ATTEMPTS + 1):
            started = time.monotonic()
            failure = None
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    async with self.connections:
                        waited = time.monotonic() - started
                        if waited > self.stats.longest_wait_for_connection:
                            self.stats.longest_wait_for_connection = waited
                        reply = await http_request(self.port, method, path, headers, body)
            except TimeoutError:
                failure = "timeout"
            except ConnectionRefusedError:
                failure = "refused"
            except ConnectionError:
                failure = "reset"
            except OSError as error:
                failure = (
                    "bench: local limit" if error.errno in LOCAL_LIMITS else "connection error"
                )
            finished = time.monotonic()
            self.stats.latencies.append(finished - started)
            self.last_activity = finished
            if failure is None:
                if reply.status < 500:
                    self.stats.requests[f"{kind} {reply.status}"] += 1
                    if reply.status >= 400 or reply.status not in EXPECTED[kind]:
                        self.stats.failures[f"{kind} answered {reply.status}"] += 1
                    return reply
                self.stats.requests[f"{kind} {reply.status}"] += 1
                failure = "5xx"
            self.stats.failures[failure] += 1
            if attempt < ATTEMPTS:
                await asyncio.sleep(random.uniform(*RETRY_AFTER))
        self.stats.gave_up += 1
        return None

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _busy(self) -> bool:
        return any(not task.done() for task in self._tasks)


EXPECTED = {
    "registration": (200, 201),
    "serial list": (200, 204),
    "pass": (200, 304),
}
