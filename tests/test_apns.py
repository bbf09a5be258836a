"""The APNs sender against a real HTTP/2 + TLS stand-in (tests/apns_server.py)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from passes.apns import ApnsClient, ApnsSettings, CertificateRejected, Outcome, PushResult
from tests.apns_server import NO_ANSWER, FakeApns, Reply, send_batch
from tests.apple_chain import FakeAppleChain, make_chain


def tokens(count: int, start: int = 0) -> list[str]:
    return [f"{number:064x}" for number in range(start, start + count)]


def outcomes(results: list[PushResult]) -> Counter[Outcome]:
    return Counter(result.outcome for result in results)


def one_connection(settings: ApnsSettings) -> ApnsSettings:
    """Every push on one connection at a time, so what happens to it happens to all."""
    return replace(settings, max_connections=1)


def test_push_is_an_empty_background_post_with_apple_headers(
    apns_server: FakeApns, apns_settings: ApnsSettings, apns_chain: FakeAppleChain
) -> None:
    token = "ab" * 32

    results = send_batch([token], apns_settings)

    assert results == [PushResult(token, Outcome.SENT, 200, None)]
    [request] = apns_server.requests
    assert request.method == "POST"
    assert request.path == f"/3/device/{token}"
    assert request.body == b"{}"
    # Kept out of HPACK's tables on both sides, so a token never outlives its request there.
    assert request.never_indexed == {":path"}
    assert request.headers["apns-topic"] == apns_chain.pass_type_identifier
    assert request.headers["apns-push-type"] == "background"
    assert request.headers["apns-priority"] == "5"
    # Non-zero and in the future, so APNs stores the push for a phone that is offline.
    expiration = int(request.headers["apns-expiration"])
    assert time.time() + 6 * 86400 < expiration < time.time() + 8 * 86400


def test_server_sees_the_pass_certificate_as_client_certificate(
    apns_server: FakeApns, apns_settings: ApnsSettings, apns_chain: FakeAppleChain
) -> None:
    send_batch(tokens(3), apns_settings)

    assert {r.client_uid for r in apns_server.requests} == {apns_chain.pass_type_identifier}


def test_unregistered_and_bad_tokens_are_dead(
    apns_server: FakeApns, apns_settings: ApnsSettings
) -> None:
    unregistered, expired, bad, other_topic, fine = tokens(5)
    apns_server.script(unregistered, Reply(410, "Unregistered"))
    apns_server.script(expired, Reply(410, "ExpiredToken"))
    apns_server.script(bad, Reply(400, "BadDeviceToken"))
    apns_server.script(other_topic, Reply(400, "DeviceTokenNotForTopic"))

    results = send_batch([unregistered, expired, bad, other_topic, fine], apns_settings)

    assert results == [
        PushResult(unregistered, Outcome.DEAD_TOKEN, 410, "Unregistered"),
        PushResult(expired, Outcome.DEAD_TOKEN, 410, "ExpiredToken"),
        PushResult(bad, Outcome.DEAD_TOKEN, 400, "BadDeviceToken"),
        PushResult(other_topic, Outcome.DEAD_TOKEN, 400, "DeviceTokenNotForTopic"),
        PushResult(fine, Outcome.SENT, 200, None),
    ]
    assert len(apns_server.requests) == 5  # none of them retried


def test_other_client_errors_fail_without_retry(
    apns_server: FakeApns, apns_settings: ApnsSettings
) -> None:
    [token] = tokens(1)
    apns_server.script(token, Reply(400, "BadTopic"))

    assert send_batch([token], apns_settings) == [
        PushResult(token, Outcome.FAILED, 400, "BadTopic")
    ]
    assert len(apns_server.requests) == 1


def test_503_is_retried_and_ends_sent(apns_server: FakeApns, apns_settings: ApnsSettings) -> None:
    [token] = tokens(1)
    apns_server.script(token, Reply(503, "ServiceUnavailable"), Reply())

    assert send_batch([token], apns_settings) == [PushResult(token, Outcome.SENT, 200, None)]
    assert [r.answered for r in apns_server.requests] == [Reply(503, "ServiceUnavailable"), Reply()]


def test_429_backs_off_until_it_clears(apns_server: FakeApns, apns_settings: ApnsSettings) -> None:
    [token] = tokens(1)
    too_many = Reply(429, "TooManyRequests")
    apns_server.script(token, too_many, too_many, Reply())

    assert send_batch([token], apns_settings)[0].outcome is Outcome.SENT
    assert len(apns_server.requests) == 3


def test_429_that_never_clears_is_left_for_later_after_max_attempts(
    apns_server: FakeApns, apns_settings: ApnsSettings
) -> None:
    [token] = tokens(1)
    apns_server.script(token, Reply(429, "TooManyRequests"))
    settings = replace(apns_settings, max_attempts=4)

    assert send_batch([token], settings) == [
        PushResult(token, Outcome.RETRY_LATER, 429, "TooManyRequests")
    ]
    assert len(apns_server.requests) == 4


def test_403_stops_the_batch_and_keeps_the_answers_received(
    apns_server: FakeApns, apns_settings: ApnsSettings
) -> None:
    batch = tokens(50)
    apns_server.script(batch[5], Reply(403, "BadCertificate"))
    # One stream at a time makes "what was sent before the 403" exact.
    settings = replace(apns_settings, max_streams=1, max_connections=1)

    with pytest.raises(CertificateRejected) as raised:
        send_batch(batch, settings)

    assert raised.value.reason == "BadCertificate"
    results = raised.value.results
    assert [r.token for r in results] == batch
    assert [r.outcome for r in results[:5]] == [Outcome.SENT] * 5
    assert results[5] == PushResult(batch[5], Outcome.RETRY_LATER, 403, "BadCertificate")
    assert {r.outcome for r in results[6:]} == {Outcome.RETRY_LATER}
    assert len(apns_server.requests) == 6


def test_403_stops_even_with_many_pushes_waiting_for_a_stream(
    apns_server: FakeApns, apns_settings: ApnsSettings
) -> None:
    apns_server.max_concurrent_streams = 5
    batch = tokens(500)
    apns_server.script(batch[0], Reply(403, "BadCertificateEnvironment"))

    settings = replace(apns_settings, max_connections=1, timeout=30)
    started = time.monotonic()

    with pytest.raises(CertificateRejected) as raised:
        send_batch(batch, settings)

    # Pushes waiting for a stream are released at once, not when their 30 s timeout expires.
    assert time.monotonic() - started < 10
    assert raised.value.reason == "BadCertificateEnvironment"
    assert len(raised.value.results) == 500
    assert len(apns_server.requests) < 50


def test_unanswered_push_times_out_and_is_retried(
    apns_server: FakeApns, apns_settings: ApnsSettings
) -> None:
    [token] = tokens(1)
    apns_server.script(token, NO_ANSWER, Reply())

    results = send_batch([token], replace(apns_settings, timeout=0.3))

    assert results == [PushResult(token, Outcome.SENT, 200, None)]
    assert [r.answered for r in apns_server.requests] == [None, Reply()]
    assert apns_server.connections == 1  # the stream was cancelled, the connection kept


def test_dropped_connection_resends_every_unanswered_push(
    apns_server: FakeApns, apns_settings: ApnsSettings
) -> None:
    batch = tokens(600)
    apns_server.drop_after(150)

    results = send_batch(batch, one_connection(apns_settings))

    assert [r.token for r in results] == batch
    assert outcomes(results) == {Outcome.SENT: 600}
    requests = apns_server.requests
    assert any(r.answered is None for r in requests)  # the drop did lose some answers
    assert {r.token for r in requests if r.answered == Reply()} == set(batch)
    assert apns_server.connections == 2


def test_goaway_resends_only_the_streams_the_server_did_not_process(
    apns_server: FakeApns, apns_settings: ApnsSettings
) -> None:
    batch = tokens(600)
    apns_server.goaway_after(150)

    results = send_batch(batch, one_connection(apns_settings))

    assert outcomes(results) == {Outcome.SENT: 600}
    requests = apns_server.requests
    # Streams up to the GOAWAY's last stream id were answered after it, and not sent twice.
    assert Counter(r.token for r in requests if r.answered) == Counter(batch)
    assert any(r.answered is None for r in requests)  # those above it were resent
    assert apns_server.connections == 2


def test_goaway_refusing_the_certificate_stops_the_batch(
    apns_server: FakeApns, apns_settings: ApnsSettings
) -> None:
    apns_server.goaway_after(20, reason="BadCertificateEnvironment")

    with pytest.raises(CertificateRejected) as raised:
        send_batch(tokens(300), one_connection(apns_settings))

    assert raised.value.reason == "BadCertificateEnvironment"
    assert apns_server.connections == 1


def test_never_more_streams_than_the_server_allows(
    apns_server: FakeApns, apns_settings: ApnsSettings
) -> None:
    apns_server.max_concurrent_streams = 10
    settings = replace(apns_settings, max_connections=1)

    results = send_batch(tokens(300), settings)

    assert outcomes(results) == {Outcome.SENT: 300}
    assert apns_server.max_in_flight == 10
    assert apns_server.errors == []
    assert apns_server.connections == 1  # h2 refusing a stream would have cost the connection


def test_a_lowered_stream_limit_is_honoured_mid_connection(
    apns_server: FakeApns, apns_settings: ApnsSettings
) -> None:
    apns_server.max_concurrent_streams = 50
    apns_server.limit_streams_after(100, 3)
    settings = replace(apns_settings, max_connections=1)

    results = send_batch(tokens(600), settings)

    assert outcomes(results) == {Outcome.SENT: 600}
    # The server's h2 refuses streams beyond an acknowledged limit: that would be an error.
    assert apns_server.errors == []
    assert apns_server.connections == 1


def test_saturated_connections_bring_more_up_to_the_maximum(
    apns_server: FakeApns, apns_settings: ApnsSettings
) -> None:
    apns_server.max_concurrent_streams = 10
    settings = replace(apns_settings, max_connections=3)

    results = send_batch(tokens(300), settings)

    assert outcomes(results) == {Outcome.SENT: 300}
    assert apns_server.connections == 3
    assert apns_server.max_in_flight <= 10


def test_one_connection_is_reused_across_batches(
    apns_server: FakeApns, apns_settings: ApnsSettings
) -> None:
    async def two_batches() -> tuple[list[PushResult], list[PushResult]]:
        async with ApnsClient(apns_settings) as client:
            return await client.push(tokens(100)), await client.push(tokens(100, 100))

    first, second = asyncio.run(two_batches())

    assert outcomes(first + second) == {Outcome.SENT: 200}
    assert apns_server.connections == 1


def test_every_request_carries_its_own_path_and_the_same_headers_across_batches(
    apns_server: FakeApns, apns_settings: ApnsSettings, apns_chain: FakeAppleChain
) -> None:
    # HPACK sends the constant headers as table references; a new batch brings a new expiration.
    async def two_batches() -> None:
        async with ApnsClient(apns_settings) as client:
            await client.push(tokens(150))
            await client.push(tokens(150, 150))

    asyncio.run(two_batches())

    requests = apns_server.requests
    assert sorted(r.token for r in requests) == tokens(300)
    assert {r.path for r in requests} == {f"/3/device/{token}" for token in tokens(300)}
    assert {r.never_indexed for r in requests} == {frozenset({":path"})}
    assert {r.method for r in requests} == {"POST"}
    assert {(r.headers["apns-topic"], r.headers["apns-push-type"]) for r in requests} == {
        (apns_chain.pass_type_identifier, "background")
    }


@pytest.mark.parametrize("size", [0, 60, 200])
def test_a_header_table_resized_by_the_server_is_honoured(
    apns_server: FakeApns, apns_settings: ApnsSettings, size: int
) -> None:
    # 0 holds nothing, 60 less than any of our headers, 200 some of them. A client that kept
    # using the old table would break the server's HPACK decoder and lose the connection.
    apns_server.resize_header_table_after(20, size)

    results = send_batch(tokens(300), one_connection(apns_settings))

    assert outcomes(results) == {Outcome.SENT: 300}
    assert apns_server.connections == 1
    assert sorted(r.token for r in apns_server.requests) == tokens(300)
    assert len({tuple(sorted(r.headers.items())) for r in apns_server.requests}) == 1


def test_tokens_that_are_not_hex_are_refused_without_sending(
    apns_server: FakeApns, apns_settings: ApnsSettings
) -> None:
    good = "0f" * 32
    bad = ["../../admin", "ab" * 31 + "/x", "zz" * 32, "", "ab" * 32 + "\n", "ab" * 32 + "?a=b"]

    results = send_batch([*bad, good], apns_settings)

    assert results == [
        *(PushResult(token, Outcome.FAILED, None, "InvalidToken") for token in bad),
        PushResult(good, Outcome.SENT, 200, None),
    ]
    assert [r.token for r in apns_server.requests] == [good]


def test_each_distinct_token_is_pushed_once(
    apns_server: FakeApns, apns_settings: ApnsSettings
) -> None:
    first, second = tokens(2)

    results = send_batch([first, second, first, first], apns_settings)

    assert [r.token for r in results] == [first, second]
    assert sorted(r.token for r in apns_server.requests) == [first, second]


def test_certificate_outside_the_apple_chain_is_refused_by_the_server(
    apns_server: FakeApns, apns_settings: ApnsSettings
) -> None:
    stranger = make_chain().pass_cert
    settings = replace(apns_settings, cert_pem=stranger.cert_pem(), key_pem=stranger.key_pem())

    with pytest.raises(CertificateRejected) as raised:
        send_batch(tokens(3), settings)

    assert "ALERT" in raised.value.reason  # the TLS alert, e.g. TLSV1_ALERT_UNKNOWN_CA
    assert {r.outcome for r in raised.value.results} == {Outcome.RETRY_LATER}
    assert apns_server.requests == []


def test_unreachable_server_leaves_pushes_for_later(apns_settings: ApnsSettings) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = replace(apns_settings, url=f"https://127.0.0.1:{port}", max_attempts=2)

    results = send_batch(tokens(20), settings)

    assert outcomes(results) == {Outcome.RETRY_LATER: 20}
    assert all(r.status is None and r.reason for r in results)


def test_server_certificate_must_be_trusted(
    apns_server: FakeApns, apns_settings: ApnsSettings, tmp_path: Path
) -> None:
    other_root = tmp_path / "other-root.pem"
    other_root.write_bytes(make_chain().root.cert_pem())
    settings = replace(apns_settings, ca_file=str(other_root), max_attempts=1)

    results = send_batch(tokens(2), settings)

    assert outcomes(results) == {Outcome.RETRY_LATER: 2}
    assert "CERTIFICATE_VERIFY_FAILED" in (results[0].reason or "")
    assert apns_server.requests == []


def test_logs_name_tokens_by_prefix_only_and_never_show_keys(
    apns_server: FakeApns, apns_settings: ApnsSettings, caplog: pytest.LogCaptureFixture
) -> None:
    failing, *others = tokens(300, 10**6)
    apns_server.script(failing, Reply(400, "BadTopic"))
    apns_server.drop_after(100)

    with caplog.at_level(logging.DEBUG, logger="passes.apns"):
        send_batch([failing, *others], apns_settings)

    assert failing[:8] in caplog.text
    assert "1 failed" in caplog.text
    assert not any(token in caplog.text for token in [failing, *others])
    assert "PRIVATE KEY" not in caplog.text
