"""The serial list's latency with 10,000,000 registrations, beside 10,000, on PostgreSQL.

Run from anywhere: `python bench/serial_list_scale.py [--rounds 20] [--block 250]`.

Two databases get the schema from the migrations and are seeded in SQL (`INSERT ... SELECT
generate_series`), in the same shape at two sizes:

- large: 1,000,000 passes, 1,000,000 devices, 10 registrations each (10,000,000);
- small: 1,000 passes, 1,000 devices, 10 registrations each (10,000).

Each device holds 10 passes spread over the whole passes table, and each pass is held by 10
devices; a device's registrations were made at different times, so they lie in different
parts of the table. Device library identifiers are 32 hex digits and push tokens 64, as Wallet
sends them; update tags are spread over three updates per pass; each pass carries the
per-pass JSON of bench/common.py. Then VACUUM ANALYZE and a CHECKPOINT, so that
neither the statistics nor a checkpoint of the load falls inside the measurement.

Measured, for a random device and a random `passesUpdatedSince` each time:

- endpoint: `GET /wallet/v1/devices/<device>/registrations/<passType>?passesUpdatedSince=<tag>`
  through Flask's test client (in-process, the app as create_app() builds it, request log
  at INFO to a file);
- SQL: the statement that endpoint runs (compiled from its SQLAlchemy statement in
  passes/webservice.py), alone through psycopg2 on an autocommit connection.

The two databases alternate in blocks within each round (which goes first alternates too),
so the machine's noise falls on both. Goal: the large database's endpoint p99 within 2x of
the small one's. EXPLAIN (ANALYZE, BUFFERS) of the statement on each database follows.

The databases are dropped at the end (also on Ctrl-C or SIGTERM), unless --keep; --reuse
measures databases kept by an earlier run instead of seeding them again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/x.py` puts bench/, not the repo, on the path

import psycopg2  # noqa: E402
import psycopg2.errors  # noqa: E402
import psycopg2.extras  # noqa: E402
from flask import Flask  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from sqlalchemy.dialects import postgresql  # noqa: E402

from app import create_app, database_url  # noqa: E402
from bench.common import PER_PASS_DATA, machine_description  # noqa: E402
from models import db  # noqa: E402
from passes.webservice import _DEVICE_PASSES  # noqa: E402

GOAL = 2.0
SERVER = "postgresql://postgres@127.0.0.1"
PASS_TYPE = "pass.com.example.shop"
# Multipliers that scatter consecutive numbers over a table: any prime that divides neither
# the number of passes nor the number of tags visits every pass (every tag) once per cycle.
SCATTER = 7919
TAG_SCATTER = 104729
UPDATES_PER_PASS = 3
BARCODE = PER_PASS_DATA["barcodes"][0]["message"]  # replaced by a per-pass number


@dataclass(frozen=True)
class Shape:
    """How many passes and devices, and how many passes each device holds."""

    passes: int
    devices: int
    per_device: int

    @property
    def registrations(self) -> int:
        return self.devices * self.per_device

    @property
    def counter(self) -> int:
        """The update counter: passes have been updated about UPDATES_PER_PASS times each."""
        return self.passes * UPDATES_PER_PASS

    def check(self) -> None:
        if self.per_device > self.passes:
            raise SystemExit("a device cannot hold more passes than there are")
        if math.gcd(SCATTER, self.passes) != 1 or math.gcd(TAG_SCATTER, self.counter) != 1:
            raise SystemExit(f"choose sizes that {SCATTER} and {TAG_SCATTER} do not divide")


def device_identifier(number: int) -> str:
    """The device library identifier of device `number`, as the seed SQL makes it."""
    return hashlib.md5(f"device-{number}".encode()).hexdigest()


# One statement per table, so each database is one INSERT ... SELECT away from its shape.
SEED = [
    (
        "passes",
        """
        INSERT INTO passes (id, pass_type_identifier, serial_number, template, data, update_tag,
                            updated_at, shares_second_with_previous, created_at)
        SELECT i, %(pass_type)s,
               -- UUID-shaped serial numbers, as issuers often use
               concat_ws('-', substr(h, 1, 8), substr(h, 9, 4), substr(h, 13, 4),
                         substr(h, 17, 4), substr(h, 21, 12)),
               'storecard', replace(%(data)s, %(barcode)s, lpad(i::text, 7, '0'))::json,
               tag, timestamptz '2026-01-01 00:00:00+00' + tag * interval '1 second', false,
               timestamptz '2025-01-01 00:00:00+00' + i * interval '1 second'
        FROM generate_series(1, %(passes)s) AS i,
             LATERAL (SELECT md5('serial-' || i) AS h,
                             (i::bigint * %(tag_scatter)s) %% %(counter)s + 1 AS tag) AS made
        """,
    ),
    (
        "devices",
        """
        INSERT INTO devices (id, device_library_identifier, push_token, created_at, updated_at)
        SELECT d, md5('device-' || d), md5('push-' || d) || md5('token-' || d),
               timestamptz '2025-06-01 00:00:00+00' + d * interval '1 second',
               timestamptz '2025-06-01 00:00:00+00' + d * interval '1 second'
        FROM generate_series(1, %(devices)s) AS d
        """,
    ),
    (
        "registrations",
        # Row i is device (i mod devices)'s (i div devices)-th pass: each device's rows lie
        # in `per_device` places of the table, as registrations made months apart do. Its
        # passes are `per_device` consecutive numbers scattered, so they are distinct and
        # far apart, and every pass gets the same number of devices.
        """
        INSERT INTO registrations (id, device_id, pass_id, created_at)
        SELECT i + 1, device, (((device - 1) * %(per_device)s + i / %(devices)s)
                               * %(scatter)s %% %(passes)s + 1)::int,
               timestamptz '2025-06-01 00:00:00+00' + i * interval '1 second'
        FROM generate_series(0::bigint, %(registrations)s - 1) AS i,
             LATERAL (SELECT (i %% %(devices)s + 1)::int AS device) AS made
        """,
    ),
]


def seed(url: str, shape: Shape) -> None:
    """Fill a freshly migrated database in `shape`, then VACUUM ANALYZE and CHECKPOINT."""
    params = {
        "pass_type": PASS_TYPE,
        "data": json.dumps(PER_PASS_DATA),
        "barcode": BARCODE,
        "passes": shape.passes,
        "devices": shape.devices,
        "per_device": shape.per_device,
        "registrations": shape.registrations,
        "counter": shape.counter,
        "scatter": SCATTER,
        "tag_scatter": TAG_SCATTER,
    }
    with closing(psycopg2.connect(url)) as connection:
        with connection, connection.cursor() as cursor:
            # The rows are consistent by construction: skipping the foreign keys' per-row
            # triggers saves 20,000,000 lookups. Indexes are still maintained as rows go in.
            cursor.execute("SET session_replication_role = replica")
            for table, sql in SEED:
                started = time.perf_counter()
                cursor.execute(sql, params)
                took = time.perf_counter() - started
                print(f"  {table}: {cursor.rowcount:,} rows in {took:.0f} s")
            cursor.execute("UPDATE update_counter SET value = %(counter)s WHERE id = 1", params)
            for table in ("passes", "devices", "registrations"):
                cursor.execute(
                    "SELECT setval(pg_get_serial_sequence(%s, 'id'), max(id)) FROM " + table,
                    (table,),
                )
        connection.autocommit = True  # VACUUM runs outside a transaction
        with connection.cursor() as cursor:
            started = time.perf_counter()
            # VACUUM, not only ANALYZE: it marks the pages all-visible, which index-only
            # scans need (autovacuum does the same to a table in production, in time).
            cursor.execute("VACUUM (ANALYZE)")
            cursor.execute("CHECKPOINT")
            print(f"  VACUUM (ANALYZE) and CHECKPOINT in {time.perf_counter() - started:.0f} s")


@contextmanager
def interruptible() -> Iterator[None]:
    """Let Ctrl-C and SIGTERM cancel a running statement: the seed's statements take minutes.

    Only around the seed: psycopg2 then waits for every answer in Python, which would slow
    the statements under measurement.
    """
    psycopg2.extensions.set_wait_callback(psycopg2.extras.wait_select)
    try:
        yield
    finally:
        psycopg2.extensions.set_wait_callback(None)


def has_shape(url: str, shape: Shape) -> bool:
    """Whether a kept database holds the rows `shape` seeds (for --reuse)."""
    try:
        connection = psycopg2.connect(url)
    except psycopg2.OperationalError:
        return False
    with closing(connection), connection.cursor() as cursor:
        try:
            cursor.execute(
                "SELECT (SELECT count(*) FROM passes), (SELECT count(*) FROM devices),"
                " (SELECT count(*) FROM registrations)"
            )
        except psycopg2.Error:
            return False
        return cursor.fetchone() == (shape.passes, shape.devices, shape.registrations)


def server_command(sql: str) -> None:
    """Run CREATE/DROP DATABASE on the server's maintenance database."""
    with closing(psycopg2.connect(f"{SERVER}/postgres")) as connection:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql)


@contextmanager
def database(name: str, shape: Shape, reuse: bool, keep: bool) -> Iterator[str]:
    """A database in `shape` (made, or kept from an earlier run), dropped afterwards."""
    url = f"{SERVER}/{name}"
    try:
        if reuse and has_shape(url, shape):
            print(f"{name}: reusing the kept database")
        else:
            print(f"{name}: seeding {shape.registrations:,} registrations")
            server_command(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            server_command(f'CREATE DATABASE "{name}"')
            migrate(url)
            with interruptible():
                seed(url, shape)
        yield url
    finally:
        if keep:
            print(f"{name}: kept (--keep)")
        else:
            server_command(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_app(url: str) -> Flask:
    """The app as create_app() builds it for production, on this database."""
    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url(url, ""),
            "SECRET_KEY": "bench-secret-key-that-is-long-enough",
            "PUBLIC_URL": "https://passes.example.test",
            "PUSH_MODE": "off",
            "LOG_LEVEL": "INFO",
        }
    )


def migrate(url: str) -> None:
    """The schema from the migrations, as `flask db upgrade` makes it."""
    app = make_app(url)
    with app.app_context():
        upgrade()
        dispose(app)


def dispose(app: Flask) -> None:
    """Close the app's database connections, so that its database can be dropped."""
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()


def serial_list_sql() -> tuple[str, dict[str, Any]]:
    """The endpoint's statement in psycopg2's parameter style, and the values it binds itself.

    Compiled from the SQLAlchemy statement itself, so this stays the endpoint's SQL
    whichever way the view executes it.
    """
    compiled = _DEVICE_PASSES.compile(dialect=postgresql.psycopg2.dialect())
    return compiled.string, {k: v for k, v in compiled.params.items() if v is not None}


Sample = Callable[[], int]  # one random request; returns its duration in nanoseconds


def endpoint_sampler(app: Flask, shape: Shape, rng: random.Random) -> Sample:
    client = app.test_client()
    prefix = "/wallet/v1/devices/"

    def one() -> int:
        device = device_identifier(rng.randint(1, shape.devices))
        tag = rng.randint(0, shape.counter)
        url = f"{prefix}{device}/registrations/{PASS_TYPE}?passesUpdatedSince={tag}"
        started = time.perf_counter_ns()
        response = client.get(url)
        elapsed = time.perf_counter_ns() - started
        if response.status_code not in (200, 204):
            raise RuntimeError(f"serial list answered {response.status_code}")
        return elapsed

    return one


def sql_sampler(connection: Any, shape: Shape, rng: random.Random) -> Sample:
    sql, bound = serial_list_sql()
    cursor = connection.cursor()

    def one() -> int:
        params = {**bound, "device": device_identifier(rng.randint(1, shape.devices))}
        params["pass_type"] = PASS_TYPE
        started = time.perf_counter_ns()
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        elapsed = time.perf_counter_ns() - started
        if len(rows) != shape.per_device:
            raise RuntimeError(f"the statement found {len(rows)} passes, not {shape.per_device}")
        return elapsed

    return one


def check_answer(app: Flask, shape: Shape) -> None:
    """Every device lists all its passes when it sends no tag: the seed is what we think."""
    device = device_identifier(shape.devices // 2 + 1)
    response = app.test_client().get(f"/wallet/v1/devices/{device}/registrations/{PASS_TYPE}")
    serials = response.get_json()["serialNumbers"] if response.status_code == 200 else []
    if len(serials) != shape.per_device:
        raise RuntimeError(f"{response.status_code}: {len(serials)} serials")


def percentile(samples: list[int], fraction: float) -> float:
    """The nearest-rank percentile, in milliseconds."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] / 1e6


def explain(url: str, shape: Shape, rng: random.Random) -> str:
    sql, bound = serial_list_sql()
    params = {**bound, "pass_type": PASS_TYPE}
    params["device"] = device_identifier(rng.randint(1, shape.devices))
    with closing(psycopg2.connect(url)) as connection, connection.cursor() as cursor:
        # Once first, for another device: a new connection's first plan reads the catalogs,
        # which the endpoint's connections, kept open, did long ago.
        cursor.execute(sql, {**params, "device": device_identifier(1)})
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def sizes(url: str) -> str:
    with closing(psycopg2.connect(url)) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, pg_size_pretty(pg_table_size(oid)),"
            " pg_size_pretty(pg_indexes_size(oid)) FROM pg_class"
            " WHERE relname IN ('passes', 'devices', 'registrations') ORDER BY relname"
        )
        return ", ".join(f"{name} {table} + indexes {indexes}" for name, table, indexes in cursor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--block", type=int, default=250, help="requests per database per round")
    parser.add_argument("--warmup", type=int, default=500, help="requests per database first")
    parser.add_argument("--small-db", default="bench_scale_small")
    parser.add_argument("--large-db", default="bench_scale_large")
    parser.add_argument("--large-passes", type=int, default=1_000_000)
    parser.add_argument("--large-devices", type=int, default=1_000_000)
    parser.add_argument("--small-passes", type=int, default=1_000)
    parser.add_argument("--small-devices", type=int, default=1_000)
    parser.add_argument("--per-device", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the databases for --reuse")
    parser.add_argument("--reuse", action="store_true", help="measure kept databases as they are")
    parser.add_argument("--seed", type=int, default=1, help="of the random devices asked for")
    args = parser.parse_args()
    shapes = {
        "small": Shape(args.small_passes, args.small_devices, args.per_device),
        "large": Shape(args.large_passes, args.large_devices, args.per_device),
    }
    for shape in shapes.values():
        shape.check()
    # SIGTERM ends the run as Ctrl-C does: through the `finally` that drops the databases.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(machine_description())

    with ExitStack() as stack:
        log_folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        # The request log, as in production, but to a file rather than this report.
        handler = logging.FileHandler(log_folder / "requests.log")
        logging.getLogger().addHandler(handler)
        stack.callback(handler.close)
        urls = {
            "small": stack.enter_context(
                database(args.small_db, shapes["small"], args.reuse, args.keep)
            ),
            "large": stack.enter_context(
                database(args.large_db, shapes["large"], args.reuse, args.keep)
            ),
        }
        samplers: dict[tuple[str, str], Sample] = {}
        for size, url in urls.items():
            rng = random.Random(f"{args.seed}-{size}")
            app = make_app(url)
            stack.callback(dispose, app)
            check_answer(app, shapes[size])
            connection = stack.enter_context(closing(psycopg2.connect(url)))
            connection.autocommit = True
            samplers["endpoint", size] = endpoint_sampler(app, shapes[size], rng)
            samplers["SQL", size] = sql_sampler(connection, shapes[size], rng)
            print(f"{size}: {sizes(url)}")

        for sample in samplers.values():
            for _ in range(args.warmup):
                sample()
        results: dict[tuple[str, str], list[int]] = {key: [] for key in samplers}
        started = time.perf_counter()
        for round_number in range(args.rounds):
            order = ["small", "large"] if round_number % 2 == 0 else ["large", "small"]
            for what in ("endpoint", "SQL"):
                for size in order:
                    sample = samplers[what, size]
                    results[what, size].extend(sample() for _ in range(args.block))
        print(
            f"\n{args.rounds} rounds of {args.block} requests per database and path "
            f"({args.rounds * args.block:,} each, after {args.warmup} warm-up) "
            f"in {time.perf_counter() - started:.0f} s\n"
        )

        header = ["p50 ms", "p90 ms", "p99 ms", "max ms"]
        print(f"{'path':<9} {'database':<34} " + " ".join(f"{h:>7}" for h in header))
        for (what, size), samples in results.items():
            shape = shapes[size]
            label = f"{size} ({shape.registrations:,} registrations)"
            print(
                f"{what:<9} {label:<34} {percentile(samples, 0.50):7.3f} "
                f"{percentile(samples, 0.90):7.3f} {percentile(samples, 0.99):7.3f} "
                f"{max(samples) / 1e6:7.3f}"
            )
        print()
        for what in ("endpoint", "SQL"):
            ratio = percentile(results[what, "large"], 0.99) / percentile(
                results[what, "small"], 0.99
            )
            p50 = statistics.median(results[what, "large"]) / statistics.median(
                results[what, "small"]
            )
            verdict = f"goal <= {GOAL:.1f}: {'MET' if ratio <= GOAL else 'MISSED'}"
            print(
                f"{what}: p99 large / small = {ratio:.2f}"
                + (f" ({verdict})" if what == "endpoint" else "")
                + f"; p50 large / small = {p50:.2f}"
            )

        statement, _ = serial_list_sql()
        print(f"\nThe statement (compiled from passes/webservice.py):\n{statement}")
        for size, url in urls.items():
            plan = explain(url, shapes[size], random.Random(f"{args.seed}-explain-{size}"))
            print(f"\nEXPLAIN (ANALYZE, BUFFERS), {size}, a random device:\n{plan}")
            tables = ("passes", "devices", "registrations")
            scanned = [table for table in tables if f"Seq Scan on {table}" in plan]
            if scanned:  # (update_counter has one row: scanning it is the fastest way)
                print(f"NOTE: the {size} plan reads all of {', '.join(scanned)}")


if __name__ == "__main__":
    try:
        main()
    # psycopg2's wait_select answers Ctrl-C by cancelling the statement, which then fails.
    except (KeyboardInterrupt, psycopg2.errors.QueryCanceled):
        sys.exit("interrupted; the databases are dropped (unless --keep)")
