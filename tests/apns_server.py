"""A real HTTP/2 + TLS stand-in for APNs (api.push.apple.com), for tests.

An h2 server on 127.0.0.1 (random port), one thread per connection. Like Apple's it demands a
client certificate from the fake Apple chain (refusing others with a TLS alert), speaks only
HTTP/2 (ALPN h2), answers POST /3/device/<token>, and refuses (400 TopicDisallowed) a push
whose apns-topic is not the pass type identifier of the connection's certificate. Tests
script the answers per token and can make it drop the connection, send GOAWAY or shrink its
stream limit mid-connection; it records every request.

Use the fixtures (`apns_chain`, `apns_server`, `apns_settings`) or `FakeApns(chain, folder)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import pytest
from hpack import NeverIndexedHeaderTuple
from hyperframe.frame import GoAwayFrame

from passes.apns import ApnsClient, ApnsSettings, PushResult
from tests.apple_chain import FakeAppleChain, Issued, make_chain, make_server_certificate


@dataclass(frozen=True)
class Reply:
    status: int = 200
    reason: str | None = None  # sent as {"reason": ...} like APNs does for errors


OK = Reply()
NO_ANSWER = Reply(0)  # the server keeps the stream open and never answers it
TOPIC_DISALLOWED = Reply(400, "TopicDisallowed")  # what APNs says to a topic not the cert's


@dataclass(frozen=True)
class RecordedRequest:
    connection: int  # 1 for the first TLS connection the server accepted, and so on
    stream_id: int
    method: str
    path: str
    headers: dict[str, str]  # regular headers only (no pseudo-headers)
    body: bytes
    client_uid: str | None  # UID in the client certificate's subject: the pass type id
    answered: Reply | None  # None when the server never answered (dropped, GOAWAY)
    never_indexed: frozenset[str] = frozenset()  # headers the client kept out of HPACK tables
    client_serial: str | None = None  # the client certificate's serial number (hex)

    @property
    def token(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass
class _Trigger:
    at: int  # the request number (over the server's life) that fires it
    action: str  # "drop", "goaway", "limit" or "table"
    value: int = 0
    reason: str = ""


class FakeApns:
    """A scriptable APNs. Every method may be called from the test thread while it runs."""

    def __init__(
        self, chain: FakeAppleChain, folder: Path, *, max_concurrent_streams: int = 1000
    ) -> None:
        self.max_concurrent_streams = max_concurrent_streams  # for connections opened later
        self.ca_file = str(folder / "apns-root.pem")
        Path(self.ca_file).write_bytes(chain.root.cert_pem())
        self._ssl = self._server_ssl_context(chain, folder)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._positions: dict[tuple[int, int], int] = {}  # (connection, stream) -> index
        self._scripts: dict[str, list[Reply]] = {}
        self._triggers: list[_Trigger] = []
        self._received = 0
        self.connections = 0  # TLS connections accepted (handshake completed)
        self.max_in_flight = 0  # most requests open at once on one connection
        # Protocol violations by the client. h2 enforces our SETTINGS_MAX_CONCURRENT_STREAMS
        # (once acknowledged), so a client opening too many streams shows up here.
        self.errors: list[str] = []
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # scripting (test thread)

    def script(self, token: str, *replies: Reply) -> None:
        """Answer `token` with these replies in turn; the last one repeats. Default: 200."""
        with self._lock:
            self._scripts[token] = list(replies)

    def drop_after(self, count: int) -> None:
        """Reset the TCP connection as request number `count` arrives, answering nothing more
        on it (not even requests that arrived with it)."""
        self._add_trigger(_Trigger(count, "drop"))

    def goaway_after(self, count: int, reason: str = "Shutdown") -> None:
        """Like nginx at its request limit: GOAWAY naming request `count`'s stream as the last
        one processed, then answer the streams up to it, then close. APNs puts a JSON
        {"reason": ...} in its GOAWAY frames; so does this."""
        self._add_trigger(_Trigger(count, "goaway", reason=reason))

    def limit_streams_after(self, count: int, max_concurrent_streams: int) -> None:
        """Send a new SETTINGS_MAX_CONCURRENT_STREAMS on the connection of request `count`."""
        self._add_trigger(_Trigger(count, "limit", max_concurrent_streams))

    def resize_header_table_after(self, count: int, size: int) -> None:
        """Send a new SETTINGS_HEADER_TABLE_SIZE (the client's HPACK table) on the connection
        of request `count`; once acknowledged, a client that overruns it breaks the decoder."""
        self._add_trigger(_Trigger(count, "table", size))

    # observation (test thread)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Wait until at least `count` requests were received; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"fake APNs got {len(self._requests)} requests, expected {count}"
                    )
                self._lock.wait(remaining)
            return list(self._requests)

    # life cycle

    def start(self) -> FakeApns:
        self._spawn(self._accept, "fake-apns")
        return self

    def stop(self) -> None:
        """Close the listener and every connection; wait for their threads."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked reading it
        for thread in list(self._threads):
            thread.join(10)

    def __enter__(self) -> FakeApns:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # server threads

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return  # listener closed by stop()
            self._spawn(self._serve, "fake-apns-connection", raw)

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(10)  # a stuck client must not hang the test run
        try:
            # Blocking TLS sends the client a real alert when its certificate is refused.
            tls = self._ssl.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        with self._lock:
            self._sockets.add(tls)
            self.connections += 1
            number = self.connections
        try:
            _ServerConnection(self, tls, number).run()
        finally:
            with self._lock:
                self._sockets.discard(tls)
            tls.close()

    def _add_trigger(self, trigger: _Trigger) -> None:
        with self._lock:
            self._triggers.append(trigger)

    def _opened(self, in_flight: int) -> None:
        with self._lock:
            self.max_in_flight = max(self.max_in_flight, in_flight)

    def _record(self, request: RecordedRequest) -> list[_Trigger]:
        """Store a complete request; return the triggers it fires."""
        with self._lock:
            self._positions[request.connection, request.stream_id] = len(self._requests)
            self._requests.append(request)
            self._received += 1
            fired = [t for t in self._triggers if t.at == self._received]
            self._triggers = [t for t in self._triggers if t.at != self._received]
            self._lock.notify_all()
            return fired

    def _reply_for(self, token: str) -> Reply:
        with self._lock:
            replies = self._scripts.get(token)
            if not replies:
                return OK
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def _mark_answered(self, connection: int, stream_id: int, reply: Reply | None) -> None:
        with self._lock:
            index = self._positions[connection, stream_id]
            self._requests[index] = replace(self._requests[index], answered=reply)

    def _error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)

    @staticmethod
    def _server_ssl_context(chain: FakeAppleChain, folder: Path) -> ssl.SSLContext:
        server_cert = _server_certificate(chain)
        cert_file = folder / "apns-server.pem"
        cert_file.write_bytes(server_cert.cert_pem() + server_cert.key_pem())
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file)
        context.verify_mode = ssl.CERT_REQUIRED
        # Apple's servers know their WWDR intermediate; clients send only their own certificate.
        context.load_verify_locations(
            cadata=(chain.root.cert_pem() + chain.wwdr.cert_pem()).decode()
        )
        context.set_alpn_protocols(["h2"])
        return context


@dataclass
class _Incoming:
    headers: dict[bytes, bytes]
    never_indexed: frozenset[str]
    body: bytearray = field(default_factory=bytearray)


class _ServerConnection:
    """One client connection, served by its own thread: read, handle, answer, repeat."""

    def __init__(self, server: FakeApns, tls: ssl.SSLSocket, number: int) -> None:
        self.server = server
        self.tls = tls
        self.number = number
        self.client_uid: str | None = None
        peer = tls.getpeercert() or {}
        self.client_serial: str | None = peer.get("serialNumber")
        for rdn in peer.get("subject", ()):
            for key, value in rdn:
                if key == "userId":
                    self.client_uid = value
        self.wrong_topic: set[int] = set()  # streams whose apns-topic is not the certificate's
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self.incoming: dict[int, _Incoming] = {}  # streams not yet answered
        self.to_answer: list[tuple[int, str]] = []
        self.ending: str | None = None  # "drop", "goaway" or "error" once the end has begun

    def run(self) -> None:
        if self.tls.selected_alpn_protocol() != "h2":
            return  # APNs speaks HTTP/2 only
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.server.max_concurrent_streams
            },
        )
        self.h2.initiate_connection()
        self.flush()
        while self.ending is None:
            try:
                data = self.tls.recv(65536)
            except (OSError, ValueError):
                return
            if not data:
                return
            self.handle(data)
            if self.ending is None:
                # Answer after the whole read is handled, as a busy server would: requests
                # that arrived together are in flight together.
                queued, self.to_answer = self.to_answer, []
                for stream_id, token in queued:
                    self.answer(stream_id, token)
                self.flush()
        if self.ending == "goaway":
            # Half-close, then read until the client hangs up: closing with unread data would
            # reset the connection and could destroy the answers just sent.
            with contextlib.suppress(OSError, ValueError):
                self.tls.shutdown(socket.SHUT_WR)
                while self.tls.recv(65536):
                    pass

    def handle(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.server._error(f"protocol error from client: {exc!r}")
            self.flush()
            self.ending = "error"
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                never_indexed = frozenset(
                    header[0].decode()
                    for header in event.headers
                    if isinstance(header, NeverIndexedHeaderTuple)
                )
                self.incoming[event.stream_id] = _Incoming(dict(event.headers), never_indexed)
                self.server._opened(len(self.incoming))
            elif isinstance(event, h2.events.DataReceived):
                self.incoming[event.stream_id].body += event.data
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self.request_complete(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self.incoming.pop(event.stream_id, None)

    def request_complete(self, stream_id: int) -> None:
        incoming = self.incoming[stream_id]
        headers = incoming.headers
        request = RecordedRequest(
            connection=self.number,
            stream_id=stream_id,
            method=headers.get(b":method", b"").decode(),
            path=headers.get(b":path", b"").decode(),
            headers={k.decode(): v.decode() for k, v in headers.items() if not k.startswith(b":")},
            body=bytes(incoming.body),
            client_uid=self.client_uid,
            answered=None,
            never_indexed=incoming.never_indexed,
            client_serial=self.client_serial,
        )
        if request.headers.get("apns-topic") != self.client_uid:
            self.wrong_topic.add(stream_id)
        fired = self.server._record(request)
        if self.ending is not None:
            return  # received after a drop or GOAWAY: recorded, never answered
        self.to_answer.append((stream_id, request.token))
        for trigger in fired:
            if trigger.action == "drop":
                self.reset()
            elif trigger.action == "goaway":
                self.goaway(stream_id, trigger.reason)
            elif trigger.action == "limit":
                self.h2.update_settings(
                    {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: trigger.value}
                )
            elif trigger.action == "table":
                self.h2.update_settings({h2.settings.SettingCodes.HEADER_TABLE_SIZE: trigger.value})

    def answer(self, stream_id: int, token: str) -> None:
        if stream_id in self.wrong_topic:
            reply = TOPIC_DISALLOWED
        else:
            reply = self.server._reply_for(token)
        if reply == NO_ANSWER:
            return
        self.incoming.pop(stream_id, None)
        apns_id = str(uuid.uuid4()).encode()
        headers = [(b":status", str(reply.status).encode()), (b"apns-id", apns_id)]
        if reply.reason is None:
            self.h2.send_headers(stream_id, headers, end_stream=True)
        else:
            body = {"reason": reply.reason}
            if reply.status == 410:
                body["timestamp"] = str(int(time.time() * 1000))
            self.h2.send_headers(stream_id, headers)
            self.h2.send_data(stream_id, json.dumps(body).encode(), end_stream=True)
        self.server._mark_answered(self.number, stream_id, reply)

    def reset(self) -> None:
        """Drop the connection: TCP reset, unanswered requests stay unanswered."""
        self.ending = "drop"
        self.tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.tls.close()

    def goaway(self, last_stream_id: int, reason: str) -> None:
        # h2 will not send after its own GOAWAY, so the frame is written by hand first.
        self.flush()
        goaway = GoAwayFrame(0)
        goaway.last_stream_id = last_stream_id
        goaway.additional_data = json.dumps({"reason": reason}).encode()
        self.tls.sendall(goaway.serialize())
        queued, self.to_answer = self.to_answer, []
        for stream_id, token in queued:
            if stream_id <= last_stream_id:
                self.answer(stream_id, token)
        self.flush()
        self.ending = "goaway"

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            with contextlib.suppress(OSError):
                self.tls.sendall(data)


# Server certificates cost an RSA key each: one per chain is enough. The chain is kept in the
# value so its id() cannot be reused while cached.
_server_certs: dict[int, tuple[FakeAppleChain, Issued]] = {}


def _server_certificate(chain: FakeAppleChain) -> Issued:
    if id(chain) not in _server_certs:
        _server_certs[id(chain)] = (chain, make_server_certificate(chain, ["127.0.0.1"]))
    return _server_certs[id(chain)][1]


def send_batch(tokens: Iterable[str], settings: ApnsSettings) -> list[PushResult]:
    """Push one batch over a fresh client, as a caller without an event loop would."""

    async def send() -> list[PushResult]:
        async with ApnsClient(settings) as client:
            return await client.push(tokens)

    return asyncio.run(send())


@pytest.fixture(scope="session")
def apns_chain() -> FakeAppleChain:
    """The fake Apple chain whose pass certificate the fake APNs accepts."""
    return make_chain()


@pytest.fixture
def apns_server(apns_chain: FakeAppleChain, tmp_path: Path) -> Iterator[FakeApns]:
    """A fresh fake APNs for one test."""
    with FakeApns(apns_chain, tmp_path) as server:
        yield server


@pytest.fixture
def apns_settings(apns_chain: FakeAppleChain, apns_server: FakeApns) -> ApnsSettings:
    """Sender settings pointing at `apns_server`, with back-off short enough for tests."""
    return ApnsSettings(
        topic=apns_chain.pass_type_identifier,
        cert_pem=apns_chain.pass_cert.cert_pem(),
        key_pem=apns_chain.pass_cert.key_pem(),
        url=apns_server.url,
        ca_file=apns_server.ca_file,
        backoff_base=0.001,
        backoff_cap=0.01,
        timeout=5.0,
    )
