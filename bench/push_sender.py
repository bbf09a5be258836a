"""Pushes per second on one core: httpx's HTTP/2 client against passes.apns (h2 driven directly).

Starts nginx (bench/nginx_apns.sh) as a fast APNs stand-in on CPU 1, pins this process to
CPU 0, and pushes the same tokens through both senders, each over warm connections.

    python bench/push_sender.py --count 20000 [--concurrency 1000] [--streams 100] [--port 8443]
        [--profile]

httpx keeps all its requests on the one HTTP/2 connection its pool holds per host; passes.apns
spreads the same number over connections of --streams each (its default unless given).

Pushes per CPU-second of this process is the figure to compare on a shared machine: the
wall-clock rate also counts the time other work held CPU 0.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import math
import os
import platform
import pstats
import shlex
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: import passes and tests

import httpx  # noqa: E402

from bench.common import cpu_model  # noqa: E402
from passes.apns import ApnsClient, ApnsSettings, Outcome  # noqa: E402
from tests.apple_chain import make_chain, make_server_certificate  # noqa: E402

NGINX = ROOT / "bench" / "nginx_apns.sh"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="pushes per sender")
    parser.add_argument("--concurrency", type=int, default=1000, help="requests in flight")
    parser.add_argument(
        "--streams", type=int, help="per passes.apns connection; default: ApnsSettings'"
    )
    parser.add_argument("--port", type=int, help="for nginx; default: any free port")
    parser.add_argument("--profile", action="store_true", help="cProfile the passes.apns run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="apns-bench-") as folder:
        nginx_dir = Path(folder) / "nginx"
        settings = start_nginx(Path(folder), nginx_dir, args.port)
        streams = min(args.concurrency, args.streams or settings.max_streams)
        connections = math.ceil(args.concurrency / streams)
        settings = replace(settings, max_streams=streams, max_connections=connections)
        print_machine()  # once nginx is installed: it names its version
        try:
            os.sched_setaffinity(0, {0})  # after starting nginx, which must not inherit it
            tokens = [os.urandom(32).hex() for _ in range(args.count)]
            print(
                f"{args.concurrency} pushes in flight: httpx on 1 connection, passes.apns on"
                f" {connections} of {streams} streams"
            )
            httpx_rates = measure(
                "httpx AsyncClient(http2=True)",
                push_with_httpx,
                tokens,
                settings,
                args.concurrency,
            )
            h2_rates = measure(
                "passes.apns (h2 directly)", push_with_apns, tokens, settings, args.profile
            )
            print(
                f"ratio passes.apns / httpx: {h2_rates[0] / httpx_rates[0]:.1f}x per second,"
                f" {h2_rates[1] / httpx_rates[1]:.1f}x per CPU-second"
            )
        finally:
            subprocess.run([NGINX, "stop", nginx_dir], check=True)


def print_machine() -> None:
    model = cpu_model()
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine: {os.cpu_count()} CPUs ({model}), {platform.platform()}")
    print(
        f"python {platform.python_version()}, h2 {version('h2')}, httpx {version('httpx')}, {nginx}"
    )


def start_nginx(folder: Path, nginx_dir: Path, port: int | None) -> ApnsSettings:
    chain = make_chain()
    server = make_server_certificate(chain, ["127.0.0.1", "localhost"])
    files = {
        "server.pem": server.cert_pem(),
        "server.key": server.key_pem(),
        "clients.pem": chain.root.cert_pem() + chain.wwdr.cert_pem(),  # as Apple trusts WWDR
        "root.pem": chain.root.cert_pem(),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    port = port or free_port()
    subprocess.run(
        [
            NGINX,
            "start",
            str(nginx_dir),
            str(port),
            str(folder / "server.pem"),
            str(folder / "server.key"),
            str(folder / "clients.pem"),
        ],
        check=True,
    )
    return ApnsSettings(
        topic=chain.pass_type_identifier,
        cert_pem=chain.pass_cert.cert_pem(),
        key_pem=chain.pass_cert.key_pem(),
        url=f"https://127.0.0.1:{port}",
        ca_file=str(folder / "root.pem"),
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


Sender = Callable[..., Coroutine[Any, Any, tuple[float, float, int]]]


def measure(name: str, sender: Sender, tokens: list[str], *args: Any) -> tuple[float, float]:
    """Run `sender` (warm-up included); print and return, for the timed part, pushes per
    second and pushes per CPU-second of this process (the fairer figure when other work
    shares the CPU)."""
    elapsed, cpu, sent = asyncio.run(sender(tokens, *args))
    rate, per_cpu = len(tokens) / elapsed, len(tokens) / cpu
    print(
        f"{name:30} {len(tokens):6d} pushes in {elapsed:6.2f} s = {rate:5.0f} pushes/s,"
        f" {cpu:6.2f} CPU-s = {per_cpu:5.0f} pushes per CPU-second"
    )
    if sent != len(tokens):
        print(f"  warning: only {sent} answered 200")
    return rate, per_cpu


async def push_with_httpx(
    tokens: list[str], settings: ApnsSettings, concurrency: int
) -> tuple[float, float, int]:
    context = ssl.create_default_context(cafile=settings.ca_file)
    with tempfile.TemporaryDirectory() as folder:
        pem = Path(folder) / "client.pem"
        pem.write_bytes(settings.cert_pem + settings.key_pem)
        context.load_cert_chain(pem)
    headers = {
        "apns-topic": settings.topic,
        "apns-push-type": "background",
        "apns-priority": "5",
        "apns-expiration": str(int(time.time()) + 3600),
    }
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(http2=True, verify=context, limits=limits) as client:
        sent = 0

        async def worker(queue: Any) -> None:
            nonlocal sent
            for token in queue:
                url = f"{settings.url}/3/device/{token}"
                response = await client.post(url, content=b"{}", headers=headers)
                sent += response.status_code == 200

        warm = iter(tokens[:500])
        await asyncio.gather(*(worker(warm) for _ in range(100)))
        sent = 0
        queue = iter(tokens)
        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker(queue) for _ in range(concurrency)))
        return time.perf_counter() - start, time.process_time() - cpu, sent


async def push_with_apns(
    tokens: list[str], settings: ApnsSettings, profile: bool
) -> tuple[float, float, int]:
    async with ApnsClient(settings) as client:
        # Warm-up: every connection open (each opens once the others are full), HPACK tables
        # filled.
        await client.push(tokens[: settings.max_streams * settings.max_connections])
        profiler = cProfile.Profile() if profile else None
        start, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        results = await client.push(tokens)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return elapsed, cpu, sum(result.outcome is Outcome.SENT for result in results)


if __name__ == "__main__":
    main()
