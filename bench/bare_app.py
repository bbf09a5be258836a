"""A bare Flask app: the baselines bench/http_paths.py measures the real app against.

Served exactly like the real app: `gunicorn 'bench.bare_app:create_app()'` from the repo root.
`GET /ping` answers a small text. With BENCH_DATABASE_URL set, `GET /query` also reads one
row through SQLAlchemy (a pooled connection, one SELECT, the rollback on return): the least
any database-backed route can cost on that database.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from flask import Flask

COUNTER = sa.text("SELECT value FROM update_counter WHERE id = 1")


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/ping")
    def ping() -> tuple[str, int, dict[str, str]]:
        return "ok", 200, {"Cache-Control": "no-cache"}

    database_url = os.environ.get("BENCH_DATABASE_URL")
    if database_url:
        engine = sa.create_engine(database_url)

        @app.get("/query")
        def query() -> tuple[str, int, dict[str, str]]:
            with engine.connect() as connection:
                value = connection.execute(COUNTER).scalar_one()
            return str(value), 200, {"Cache-Control": "no-cache"}

    return app
