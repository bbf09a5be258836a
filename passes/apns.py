"""Tell devices that a pass changed: empty background pushes to APNs over HTTP/2.

Wallet's protocol: POST `{}` to `/3/device/<pushToken>` on api.push.apple.com with the Pass
Type ID certificate as the TLS client certificate; the device then asks our web service
which serial numbers changed.

We drive the `h2` library over asyncio TLS connections instead of using httpx: against a
local nginx, httpx's HTTP/2 request path sent about a tenth as many pushes per CPU-second
(bench/push_sender.py, BENCHMARKS.md). Only h2's public API is used.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import ssl
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
from hpack import NeverIndexedHeaderTuple

log = logging.getLogger(__name__)

PRODUCTION_URL = "https://api.push.apple.com"

# APNs keeps an undelivered push (the latest one per device) until this time. A week covers a
# phone that is switched off over a holiday; a pass update older than that is rarely worth
# waking a device for, and the user can still pull to refresh in Wallet.
EXPIRATION_SECONDS = 7 * 24 * 3600

BODY = b"{}"

# Apple's reasons meaning "this token will never work again": remove its registrations.
DEAD_TOKEN_REASONS = frozenset({"BadDeviceToken", "DeviceTokenNotForTopic"})
# A GOAWAY carrying one of these refuses the certificate for every push on the connection.
CERTIFICATE_REASONS = frozenset({"BadCertificate", "BadCertificateEnvironment", "Forbidden"})

# Device tokens are hex (32 bytes today; Apple says not to rely on the length). Checking the
# alphabet also guarantees a token cannot change the request path.
DEVICE_TOKEN = re.compile(r"[0-9a-fA-F]{16,200}")


def is_valid_token(token: str) -> bool:
    """Whether `token` looks like an APNs device token (the registration endpoint checks)."""
    return DEVICE_TOKEN.fullmatch(token) is not None


@dataclass(frozen=True)
class ApnsSettings:
    topic: str  # the pass type identifier
    cert_pem: bytes  # Pass Type ID certificate (PEM), optionally followed by intermediates
    key_pem: bytes  # its private key (PEM, unencrypted)
    url: str = PRODUCTION_URL  # passes always use production
    ca_file: str | None = None  # trust another server (tests, staging); None = system store
    # Our own cap; the effective one is min(this, the server's SETTINGS_MAX_CONCURRENT_STREAMS).
    # h2 walks every stream of a connection to count the open ones before it opens another,
    # so a push costs more the more streams share its connection: at 1,000 that walk took
    # over a third of the sender's CPU, at 100 a few percent (BENCHMARKS.md). More
    # connections of fewer streams each keep as many pushes in flight.
    max_streams: int = 100
    max_connections: int = 10  # opened only while every open connection is saturated
    max_attempts: int = 5  # per token, for 429, 5xx and lost connections
    backoff_base: float = 0.5  # seconds; exponential with full jitter
    backoff_cap: float = 30.0
    timeout: float = 30.0  # to connect; per push, from waiting for a stream to the answer


class Outcome(StrEnum):
    SENT = "sent"
    DEAD_TOKEN = "dead_token"  # remove this device's registrations
    RETRY_LATER = "retry_later"  # keep pending, push again later
    FAILED = "failed"  # refused for another reason (logged); retrying will not help


@dataclass(frozen=True)
class PushResult:
    token: str
    outcome: Outcome
    status: int | None = None  # HTTP status from APNs; None when no answer was received
    reason: str | None = None  # APNs "reason", or what went wrong locally
    # APNs's id for the notification, the one Apple asks for when a push went astray.
    # Not part of equality: it is unique to every push.
    apns_id: str | None = field(default=None, compare=False)


class CertificateRejected(Exception):
    """APNs refused our certificate (403 or a TLS alert); the batch was stopped.

    `results` still holds one result per token: the answers received before the stop, and
    RETRY_LATER for every token that was not answered, so the caller can record them all.
    """

    def __init__(self, reason: str, results: list[PushResult]) -> None:
        super().__init__(f"APNs rejected the certificate: {reason}")
        self.reason = reason
        self.results = results


def token_prefix(token: str) -> str:
    """A token prefix for logs: enough to correlate, not enough to push to the device."""
    return token[:8] + "..."


class _StreamLost(Exception):
    """The request may not have been answered (connection lost, GOAWAY, reset, timeout)."""


class _Stopped(Exception):
    """The batch stopped before this request was sent."""


class _CertificateRefused(Exception):
    """The server refused our client certificate: TLS alert, or a GOAWAY saying so."""


_Answer = tuple[int, str | None, str | None]  # HTTP status, APNs reason, apns-id
_Headers = list[tuple[bytes, bytes]]


class ApnsClient:
    """Long-lived HTTP/2 connections to APNs; `push` may be called many times, concurrently.

    Apple asks providers to keep connections open rather than reconnect for every batch.
    """

    def __init__(self, settings: ApnsSettings) -> None:
        url = urlsplit(settings.url)
        if url.scheme != "https" or not url.hostname:
            raise ValueError(f"APNs URL must be https://host[:port], got {settings.url!r}")
        self.settings = settings
        self._host = url.hostname
        self._port = url.port or 443
        authority = self._host if self._port == 443 else f"{self._host}:{self._port}"
        self._pseudo_headers = [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
        ]
        self._ssl = _client_ssl_context(settings)
        self._connections: list[_Connection] = []  # the ones accepting new streams
        self._all: set[_Connection] = set()  # including draining ones, to close them
        self._opening = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def __aenter__(self) -> ApnsClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def push(self, tokens: Iterable[str]) -> list[PushResult]:
        """Push to every distinct token; one result per distinct token, in input order.

        Raises CertificateRejected (carrying every result) when APNs refuses the certificate.
        """
        return await _Batch(self, tokens).run()

    async def close(self) -> None:
        """Say goodbye (GOAWAY) on every connection and wait briefly for them to close."""
        connections = list(self._all)
        for connection in connections:
            connection.close()
        if connections:
            await asyncio.wait([c.closed for c in connections], timeout=1.0)
        for connection in connections:
            connection.abort()

    def _headers(self, token: str, tail: _Headers) -> _Headers:
        # Never-indexed keeps device tokens out of HPACK tables, and stops every new path from
        # evicting the constant headers there.
        path = NeverIndexedHeaderTuple(b":path", b"/3/device/" + token.encode())
        return [*self._pseudo_headers, path, *tail]

    async def _request(self, headers: _Headers, stop: Callable[[], bool]) -> _Answer:
        """Send one push on a connection with a free stream; return (status, reason)."""
        connection, stream_id = None, 0
        try:
            async with asyncio.timeout(self.settings.timeout):
                connection = await self._connection_with_room(stop)
                stream_id, answer = connection.send(headers)
                return await answer
        except TimeoutError:
            if connection is not None:
                connection.cancel(stream_id)
            raise _StreamLost(f"timed out after {self.settings.timeout:g} s") from None

    async def _connection_with_room(self, stop: Callable[[], bool]) -> _Connection:
        while True:
            if stop():
                # We may have been woken for a free stream we will not use: pass it on.
                self._room_freed()
                raise _Stopped
            for connection in self._connections:
                if connection.has_room():
                    return connection
            # Open one connection at a time, and only when every open one is saturated: a
            # connection being opened may well be enough.
            if not self._opening and len(self._connections) < self.settings.max_connections:
                await self._open()
                continue
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter  # raises when opening a connection failed

    async def _open(self) -> None:
        self._opening += 1
        try:
            connection = await self._connect()
        except BaseException as exc:
            # Everyone waiting for room shares this failure instead of each trying in turn.
            self._wake_all(exc if isinstance(exc, Exception) else None)
            raise
        finally:
            self._opening -= 1
        self._connections.append(connection)
        self._all.add(connection)
        self._wake_all()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        connection = _Connection(self.settings.max_streams, self._room_freed, self._changed)
        try:
            async with asyncio.timeout(self.settings.timeout):
                await loop.create_connection(
                    lambda: connection, self._host, self._port, ssl=self._ssl
                )
                # Requests wait for the server's SETTINGS: it carries the stream limit, and
                # with TLS 1.3 a refused client certificate only shows up here.
                await connection.ready
        except ssl.SSLError as exc:
            connection.abort()
            if _is_certificate_alert(exc):
                raise _CertificateRefused(exc.reason or str(exc)) from exc
            raise
        except BaseException:
            connection.abort()
            raise
        log.info("APNs connection open to %s:%d", self._host, self._port)
        return connection

    def _room_freed(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _wake_all(self, error: Exception | None = None) -> None:
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)

    def _changed(self, connection: _Connection) -> None:
        """New stream limit, or the connection retired (GOAWAY, closed): everyone looks again."""
        if connection.draining and connection in self._connections:
            self._connections.remove(connection)
        if connection.closed.done():
            self._all.discard(connection)
        self._wake_all()


class _Stream:
    __slots__ = ("answer", "status", "apns_id", "body")

    def __init__(self, answer: asyncio.Future[_Answer]) -> None:
        self.answer = answer
        self.status = 0
        self.apns_id: str | None = None
        self.body = b""


_GOAWAY_FRAME = 0x7

_H2_CONFIG = h2.config.H2Configuration(
    client_side=True,
    header_encoding=None,
    # Header checks cost more than the rest of h2's request path. Ours are built from constants
    # and hex tokens; of Apple's answers we read only :status and a JSON body.
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
)


class _Connection(asyncio.Protocol):
    """One HTTP/2 connection: frames requests and routes each answer to its stream's future."""

    def __init__(
        self,
        max_streams: int,
        room_freed: Callable[[], None],
        changed: Callable[[_Connection], None],
    ) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._streams: dict[int, _Stream] = {}
        self._h2 = h2.connection.H2Connection(_H2_CONFIG)
        self._transport: asyncio.Transport | None = None
        self._own_limit = max_streams
        self._limit = 0  # no requests until the server's SETTINGS arrive
        self._flush_scheduled = False
        self._inbox = bytearray()  # received bytes that do not yet make a whole frame
        self._room_freed = room_freed
        self._changed = changed
        self.draining = False
        self.ready: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def has_room(self) -> bool:
        return (
            not self.draining
            and len(self._streams) < self._limit
            and self._h2.outbound_flow_control_window >= len(BODY)
        )

    def send(self, headers: _Headers) -> tuple[int, asyncio.Future[_Answer]]:
        answer: asyncio.Future[_Answer] = self._loop.create_future()
        try:
            stream_id = self._h2.get_next_available_stream_id()
            self._h2.send_headers(stream_id, headers)
            self._h2.send_data(stream_id, BODY, end_stream=True)
        except h2.exceptions.H2Error as exc:
            # Stream ids used up, or the limit shrank under us: this connection is done.
            self._retire()
            answer.set_exception(_StreamLost(f"cannot open a stream: {exc!r}"))
            return 0, answer
        self._streams[stream_id] = _Stream(answer)
        if not self._flush_scheduled:
            # Write everything queued during this loop iteration as one TLS write.
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return stream_id, answer

    def cancel(self, stream_id: int) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        try:
            self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        except h2.exceptions.H2Error:
            pass  # already closed on the h2 side; nothing to tell the server
        self._flush()
        self._room_freed()

    def close(self) -> None:
        """Graceful goodbye: GOAWAY, then close once the server has seen it."""
        if self._transport is None or self._transport.is_closing():
            return
        self._retire()
        try:
            self._h2.close_connection()
        except h2.exceptions.H2Error:
            pass
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None or ssl_object.selected_alpn_protocol() != "h2":
            self.ready.set_exception(ConnectionError("server did not agree to HTTP/2 (ALPN)"))
            transport.abort()
            return
        self._h2.initiate_connection()
        self._flush()

    def data_received(self, data: bytes) -> None:
        # GOAWAY frames are kept from h2: after one, h2 refuses every further frame, but a
        # server shutting down gracefully (nginx at its request limit, APNs restarting) still
        # answers the streams up to the GOAWAY's last stream id.
        self._inbox += data
        start = position = 0
        while len(self._inbox) - position >= 9:  # a frame header
            end = position + 9 + int.from_bytes(self._inbox[position : position + 3])
            if end > len(self._inbox):
                break
            if self._inbox[position + 3] == _GOAWAY_FRAME:
                self._receive(self._inbox[start:position])
                self._goaway(bytes(self._inbox[position + 9 : end]))
                start = end
            position = end
        self._receive(self._inbox[start:position])
        del self._inbox[:position]
        self._flush()

    def _receive(self, data: bytes | bytearray) -> None:
        if not data or self._transport is None or self._transport.is_closing():
            return
        try:
            events = self._h2.receive_data(bytes(data))
        except h2.exceptions.ProtocolError as exc:
            log.warning("APNs HTTP/2 protocol error, reconnecting: %r", exc)
            self._flush()
            self.abort()
            return
        for event in events:
            if isinstance(event, h2.events.ResponseReceived):
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream.status, stream.apns_id = _status_and_id(event.headers)
            elif isinstance(event, h2.events.StreamEnded):
                self._finish(event.stream_id)
            elif isinstance(event, h2.events.DataReceived):
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream.body += event.data
                # Give the window back so error bodies never stall the connection.
                self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self._lose(event.stream_id, f"stream reset by server ({event.error_code!r})")
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                self._settings_changed()
            elif isinstance(event, h2.events.WindowUpdated):
                self._room_freed()

    def connection_lost(self, exc: Exception | None) -> None:
        why = f"connection lost ({exc!r})" if exc else "connection closed"
        if self._streams:
            log.info("APNs %s; %d pushes unanswered, resending", why, len(self._streams))
        for stream_id in list(self._streams):
            self._lose(stream_id, why)
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed before HTTP/2 SETTINGS"))
        if not self.closed.done():
            self.closed.set_result(None)
        self._retire()

    # internals

    def _flush(self) -> None:
        self._flush_scheduled = False
        data = self._h2.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _finish(self, stream_id: int) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        if not stream.answer.done():
            stream.answer.set_result((stream.status, _reason(stream.body), stream.apns_id))
        if self.draining and not self._streams:
            self.close()
        self._room_freed()

    def _lose(self, stream_id: int, why: str, error: Exception | None = None) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is not None and not stream.answer.done():
            stream.answer.set_exception(error or _StreamLost(why))

    def _settings_changed(self) -> None:
        server_limit = self._h2.remote_settings.max_concurrent_streams
        self._limit = min(self._own_limit, server_limit)
        if not self.ready.done():
            self.ready.set_result(None)
        self._changed(self)

    def _goaway(self, payload: bytes) -> None:
        last_stream_id = int.from_bytes(payload[:4]) & 0x7FFFFFFF
        error_code = int.from_bytes(payload[4:8])
        reason = _reason(payload[8:])
        log.info(
            "APNs sent GOAWAY (error %d, %s, last stream %d)", error_code, reason, last_stream_id
        )
        self._retire()
        for stream_id in list(self._streams):
            if reason in CERTIFICATE_REASONS:
                self._lose(stream_id, reason, _CertificateRefused(reason))
            elif stream_id > last_stream_id:
                self._lose(stream_id, "GOAWAY: never processed")  # safe to resend
        if not self._streams:
            self.close()

    def _retire(self) -> None:
        self.draining = True
        self._changed(self)


def _status_and_id(headers: list[tuple[bytes, bytes]]) -> tuple[int, str | None]:
    status, apns_id = 0, None
    for name, value in headers:
        if name == b":status":
            status = int(value)
        elif name == b"apns-id":
            apns_id = value[:36].decode("ascii", "replace")  # a UUID
    return status, apns_id


def _reason(body: bytes) -> str | None:
    if not body:
        return None
    try:
        reason = json.loads(body).get("reason")
    except (ValueError, AttributeError):
        return body[:100].decode(errors="replace")
    return str(reason) if reason is not None else None


class _Batch:
    """One call to ApnsClient.push: workers feed tokens to connections and record results."""

    def __init__(self, client: ApnsClient, tokens: Iterable[str]) -> None:
        self.client = client
        self.settings = client.settings
        self.tokens = list(dict.fromkeys(tokens))  # one push per device is enough
        self.results: dict[str, PushResult] = {}
        self.rejected: str | None = None
        self.stopping: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        expiration = str(int(time.time()) + EXPIRATION_SECONDS).encode()
        self.tail = [
            (b"apns-topic", self.settings.topic.encode()),
            (b"apns-push-type", b"background"),
            (b"apns-priority", b"5"),  # 10 is not allowed for background pushes
            (b"apns-expiration", expiration),
        ]

    async def run(self) -> list[PushResult]:
        valid = []
        for token in self.tokens:
            if is_valid_token(token):
                valid.append(token)
            else:
                self.results[token] = PushResult(token, Outcome.FAILED, None, "InvalidToken")
        queue = iter(valid)
        workers = min(len(valid), self.settings.max_streams * self.settings.max_connections)
        await asyncio.gather(*(self._worker(queue) for _ in range(workers)))
        results = [self.results[token] for token in self.tokens]
        self._log_summary(results)
        if self.rejected is not None:
            raise CertificateRejected(self.rejected, results)
        return results

    async def _worker(self, queue: Iterable[str]) -> None:
        for token in queue:  # shared iterator: each token goes to exactly one worker
            self.results[token] = await self._push(token)

    def _stop_requested(self) -> bool:
        return self.rejected is not None

    async def _push(self, token: str) -> PushResult:
        headers = self.client._headers(token, self.tail)
        status: int | None = None
        reason: str | None = None
        apns_id: str | None = None
        for attempt in range(1, self.settings.max_attempts + 1):
            try:
                status, reason, apns_id = await self.client._request(headers, self._stop_requested)
            except _Stopped:
                return PushResult(token, Outcome.RETRY_LATER, status, reason or "NotSent", apns_id)
            except _CertificateRefused as exc:
                self._reject(str(exc))
                return PushResult(token, Outcome.RETRY_LATER, None, str(exc))
            except (OSError, TimeoutError, _StreamLost) as exc:
                status, reason, apns_id = None, str(exc) or type(exc).__name__, None
            else:
                if status == 200:
                    return PushResult(token, Outcome.SENT, status, reason, apns_id)
                if status == 410 or (status == 400 and reason in DEAD_TOKEN_REASONS):
                    return PushResult(token, Outcome.DEAD_TOKEN, status, reason, apns_id)
                if status == 403:
                    self._reject(reason or "Forbidden")
                    return PushResult(token, Outcome.RETRY_LATER, status, reason, apns_id)
                if status != 429 and status < 500:
                    log.warning(
                        "APNs refused the push to %s: %d %s", token_prefix(token), status, reason
                    )
                    return PushResult(token, Outcome.FAILED, status, reason, apns_id)
            if attempt < self.settings.max_attempts and not await self._back_off(attempt):
                break
        return PushResult(token, Outcome.RETRY_LATER, status, reason, apns_id)

    async def _back_off(self, attempt: int) -> bool:
        """Wait before the next attempt; False when the batch stopped meanwhile."""
        # Full jitter spreads retries from many streams instead of repeating the burst.
        ceiling = min(self.settings.backoff_cap, self.settings.backoff_base * 2 ** (attempt - 1))
        await asyncio.wait([self.stopping], timeout=random.uniform(0, ceiling))
        return not self._stop_requested()

    def _reject(self, reason: str) -> None:
        if self.rejected is None:
            log.error("APNs rejected the certificate (%s); stopping this batch", reason)
            self.rejected = reason
            self.stopping.set_result(None)

    @staticmethod
    def _log_summary(results: list[PushResult]) -> None:
        counts = Counter(result.outcome for result in results)
        log.info(
            "APNs push: %d sent, %d dead tokens, %d to retry later, %d failed",
            counts[Outcome.SENT],
            counts[Outcome.DEAD_TOKEN],
            counts[Outcome.RETRY_LATER],
            counts[Outcome.FAILED],
        )
        if counts[Outcome.RETRY_LATER]:
            reasons = Counter(
                f"{r.status or 'no answer'} {r.reason}"
                for r in results
                if r.outcome is Outcome.RETRY_LATER
            )
            log.warning("APNs pushes left for later, by reason: %s", reasons.most_common(3))


def _client_ssl_context(settings: ApnsSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.ca_file)
    context.set_alpn_protocols(["h2"])
    # The ssl module loads certificates only from files: write them to a private temporary
    # directory (mode 0700) just long enough to load them.
    with tempfile.TemporaryDirectory(prefix="apns-") as folder:
        cert_path = os.path.join(folder, "cert.pem")
        key_path = os.path.join(folder, "key.pem")
        for path, data in ((cert_path, settings.cert_pem), (key_path, settings.key_pem)):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
        context.load_cert_chain(cert_path, key_path)
    return context


def _is_certificate_alert(exc: ssl.SSLError) -> bool:
    """A TLS alert from the server about our certificate (not a network hiccup)."""
    reason = exc.reason or ""
    return "ALERT" in reason and any(
        word in reason for word in ("CERTIFICATE", "UNKNOWN_CA", "ACCESS_DENIED")
    )
