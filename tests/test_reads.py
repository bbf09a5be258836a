"""The device paths' kept-open read connections (models.Reads): reused, and replaced when the
database drops one."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade

from models import DeviceLogEntry, db, utcnow
from passes import context
from tests.conftest import Admin
from tests.test_webservice import auth, pass_url, register, serials_url


def idle_connections(app: Flask) -> list[sa.Connection]:
    with app.app_context():
        return list(context.runtime().reads._idle)


def drop(connection: sa.Connection, app: Flask) -> None:
    """What a database restart or an idle timeout does to a connection we keep open."""
    dbapi_connection = connection.connection.dbapi_connection
    if connection.dialect.name == "postgresql":
        with app.app_context():
            db.session.execute(
                sa.text("SELECT pg_terminate_backend(:pid)"),
                {"pid": dbapi_connection.get_backend_pid()},
            )
            db.session.commit()
    else:
        dbapi_connection.close()  # SQLite has no server to end it


def test_one_request_after_another_reuses_one_connection(
    app: Flask, client: FlaskClient, admin: Admin
) -> None:
    created = admin.create_pass()
    register(client, created)
    before = idle_connections(app)
    for _ in range(5):
        assert client.get(serials_url(created)).status_code == 200
        assert client.get(pass_url(created), headers=auth(created)).status_code == 200
    after = idle_connections(app)
    assert len(after) == max(len(before), 1)
    assert set(map(id, before)) <= set(map(id, after))


def test_a_dropped_connection_is_replaced_without_an_error(
    app: Flask, client: FlaskClient, admin: Admin
) -> None:
    created = admin.create_pass()
    register(client, created)
    assert client.get(serials_url(created)).status_code == 200
    for connection in idle_connections(app):
        drop(connection, app)

    listed = client.get(serials_url(created))

    assert listed.status_code == 200
    assert listed.get_json()["serialNumbers"] == [created["serialNumber"]]
    assert client.get(pass_url(created), headers=auth(created)).status_code == 200


def test_an_in_memory_database_reads_through_the_sessions_connection(
    make_app: Callable[..., Flask],
) -> None:
    # sqlite:// lives inside one connection: a pool of its own would see an empty database.
    # The reads must not leave that shared connection without transactions either.
    app = make_app(SQLALCHEMY_DATABASE_URI="sqlite://")
    with app.app_context():
        upgrade()
    client = app.test_client()
    admin = Admin(client)
    created = admin.create_pass()
    register(client, created)
    tag = client.get(serials_url(created)).get_json()["lastUpdated"]

    patched = admin.patch(
        f"/api/passes/{created['passTypeIdentifier']}/{created['serialNumber']}",
        json={"pass": {"logoText": "changed"}},
    )

    assert patched.status_code == 200
    changed = client.get(serials_url(created), query_string={"passesUpdatedSince": tag})
    assert changed.get_json()["serialNumbers"] == [created["serialNumber"]]
    with app.app_context():
        db.session.execute(sa.insert(DeviceLogEntry).values(message="x", created_at=utcnow()))
        db.session.rollback()  # still a transaction: the row is gone again
        assert db.session.scalar(sa.select(sa.func.count()).select_from(DeviceLogEntry)) == 0
