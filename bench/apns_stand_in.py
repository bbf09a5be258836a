"""An APNs stand-in for bench/fanout.py: HTTP/2 over TLS on asyncio, in the benchmark's process.

Like api.push.apple.com it speaks HTTP/2 only (ALPN h2), demands a client certificate issued by
the (fake) Apple chain, and answers POST /3/device/<token>. Every push is answered 200 at once
and handed to `on_push(token)`, which makes that phone do what Wallet does on a push.

tests/apns_server.py is the scriptable one for tests (a thread per connection); this one is
an asyncio protocol so that it shares the event loop of the simulated phones.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from tests.apple_chain import FakeAppleChain, make_server_certificate

MAX_CONCURRENT_STREAMS = 1000  # what APNs announces
DEVICE_PATH = b"/3/device/"
SLICE = 4096  # bytes of a read handed to h2 at a time (see data_received)


class ApnsStandIn:
    """Listens on 127.0.0.1:`port` from start() until close(); counts what it received."""

    def __init__(
        self, chain: FakeAppleChain, folder: Path, port: int, on_push: Callable[[str], None]
    ) -> None:
        self.port = port
        self.on_push = on_push
        self.ssl = _server_ssl_context(chain, folder)
        self.pushes = 0
        self.refused = 0  # requests that were not a POST to /3/device/<token>
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.Transport] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), "127.0.0.1", self.port, ssl=self.ssl
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()  # stops listening; open connections are ours to close
            for transport in list(self._open):
                transport.abort()
            await self._server.wait_closed()

    async def __aenter__(self) -> ApnsStandIn:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class _Connection(asyncio.Protocol):
    def __init__(self, server: ApnsStandIn) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        # The client's headers are the app's to get right (tests/test_apns.py checks them);
        # checking every one again here would only make the stand-in slower.
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
        )
        self.h2 = h2.connection.H2Connection(config)
        self.requests: dict[int, tuple[bytes, bytes]] = {}  # stream -> (method, path)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server._open.add(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None or ssl_object.selected_alpn_protocol() != "h2":
            transport.close()  # APNs speaks HTTP/2 only
            return
        self.server.connections += 1
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS
            },
        )
        self.h2.initiate_connection()
        transport.write(self.h2.data_to_send())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.server._open.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        # Fed to h2 in small slices, each answered before the next: h2 counts the open
        # streams by walking them all for every new one, so a whole read's worth of
        # unanswered pushes (hundreds) would cost time quadratic in their number.
        for start in range(0, len(data), SLICE):
            if not self._receive(data[start : start + SLICE]):
                return

    def _receive(self, data: bytes) -> bool:
        """Handle a slice of what the client sent; False once the connection is closed."""
        assert self.transport is not None
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.transport.write(self.h2.data_to_send())
            self.transport.close()
            return False
        pushed = []
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                headers = dict(event.headers)
                self.requests[event.stream_id] = (headers[b":method"], headers[b":path"])
            elif isinstance(event, h2.events.DataReceived):
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                method, path = self.requests.pop(event.stream_id, (b"", b""))
                if method == b"POST" and path.startswith(DEVICE_PATH):
                    self.h2.send_headers(event.stream_id, [(b":status", b"200")], end_stream=True)
                    pushed.append(path[len(DEVICE_PATH) :].decode())
                else:
                    self.server.refused += 1
                    self.h2.send_headers(event.stream_id, [(b":status", b"404")], end_stream=True)
            elif isinstance(event, h2.events.StreamReset):
                self.requests.pop(event.stream_id, None)
        self.transport.write(self.h2.data_to_send())
        # Answered first, as APNs answers before the phone hears anything.
        self.server.pushes += len(pushed)
        for token in pushed:
            self.server.on_push(token)
        return True


def _server_ssl_context(chain: FakeAppleChain, folder: Path) -> ssl.SSLContext:
    certificate = make_server_certificate(chain, ["127.0.0.1"])
    pem = folder / "apns-stand-in.pem"
    pem.write_bytes(certificate.cert_pem() + certificate.key_pem())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pem)
    context.verify_mode = ssl.CERT_REQUIRED  # a client certificate, or no connection
    # Apple's servers know their WWDR intermediate; clients send only their own certificate.
    context.load_verify_locations(cadata=(chain.root.cert_pem() + chain.wwdr.cert_pem()).decode())
    context.set_alpn_protocols(["h2"])
    return context
