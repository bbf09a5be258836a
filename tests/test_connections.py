"""Database connections that die under the app (a restart, a pooler recycling them) are
replaced without failing a request, and database errors never reach the log with the
values they were about."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from models import Device, db
from passes import context
from tests.conftest import Admin
from tests.pgbouncer import PgBouncer
from tests.test_webservice import auth, pass_url, register, serials_url


def _end_every_connection_of(app: Flask) -> None:
    """What a PostgreSQL restart does to the connections the app keeps in its pool."""
    with app.app_context():
        url = db.engine.url
    outsider = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with outsider.begin() as connection:
        connection.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    outsider.dispose()


def test_device_requests_succeed_after_the_database_dropped_every_connection(
    app: Flask, client: FlaskClient, admin: Admin
) -> None:
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("needs a database server whose connections can be ended")
    created = admin.create_pass()
    register(client, created)
    assert client.get(serials_url(created)).status_code == 200
    _end_every_connection_of(app)
    for _ in range(3):
        listed = client.get(serials_url(created))
        assert listed.status_code == 200
        assert listed.get_json()["serialNumbers"] == [created["serialNumber"]]
        assert client.get(pass_url(created), headers=auth(created)).status_code == 200


def test_device_requests_succeed_after_pgbouncer_restarted(
    make_app: Callable[..., Flask], database_uri: str
) -> None:
    if not database_uri.startswith("postgresql"):
        pytest.skip("PgBouncer stands in front of PostgreSQL")
    with PgBouncer(6440, database_uri) as bouncer:
        app = make_app(SQLALCHEMY_DATABASE_URI=bouncer.url)
        client = app.test_client()
        created = Admin(client).create_pass()
        register(client, created)
        assert client.get(serials_url(created)).status_code == 200
        # The pooler restarts (a deploy, a failover): every connection the app holds to it
        # is closed under it.
        bouncer.stop()
        bouncer.start()
        for _ in range(3):
            assert client.get(serials_url(created)).status_code == 200
            assert client.get(pass_url(created), headers=auth(created)).status_code == 200
        context.runtime_of(app).stop()  # its records are written while the pooler runs


def test_a_database_error_is_logged_without_the_values_it_was_about(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    token = "ab" * 32
    app = make_app()

    @app.get("/_fail")
    def fail() -> str:
        # Both the bound parameter and PostgreSQL's "Failing row contains (...)" carry it.
        db.session.execute(
            sa.insert(Device).values(device_library_identifier=None, push_token=token)
        )
        return "unreachable"

    response = app.test_client().get("/_fail")
    assert response.status_code == 500
    assert "database error" in caplog.text
    assert "devices" in caplog.text  # what locates the fault is there
    assert token not in caplog.text
    assert token not in response.get_data(as_text=True)
