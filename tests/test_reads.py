"""The device paths' kept-open read connections (passes/reads.py): reused, and replaced when the
database drops one."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade

from models import DeviceLogEntry, db, utcnow
from passes import context
from passes.reads import Reads
from tests.conftest import Admin
from tests.test_webservice import auth, pass_url, register, serials_url


def idle_connections(app: Flask) -> list[Any]:
    with app.app_context():
        return list(context.runtime().reads._idle)


def drop(connection: Any, app: Flask) -> None:
    """What a database restart or an idle timeout does to a connection we keep open."""
    dbapi_connection = connection.pooled.dbapi_connection
    if is_postgresql(app):
        with app.app_context():
            db.session.execute(
                sa.text("SELECT pg_terminate_backend(:pid)"),
                {"pid": dbapi_connection.get_backend_pid()},
            )
            db.session.commit()
    else:
        dbapi_connection.close()  # SQLite has no server to end it


def is_postgresql(app: Flask) -> bool:
    with app.app_context():
        return db.engine.dialect.name == "postgresql"


def pass_read_once(client: FlaskClient, admin: Admin) -> dict[str, str]:
    """A pass on a device, listed once: a read connection is now held."""
    created = admin.create_pass()
    register(client, created)
    assert client.get(serials_url(created)).status_code == 200
    return created


def assert_both_paths_read(client: FlaskClient, created: dict[str, str]) -> None:
    listed = client.get(serials_url(created))
    assert listed.status_code == 200
    assert listed.get_json()["serialNumbers"] == [created["serialNumber"]]
    assert client.get(pass_url(created), headers=auth(created)).status_code == 200


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
    created = pass_read_once(client, admin)
    for connection in idle_connections(app):
        drop(connection, app)

    assert_both_paths_read(client, created)


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


needs_postgresql = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"),
    reason="prepared statements are PostgreSQL's (CI runs the suite on it too)",
)


def run_on(connection: Any, sql: str) -> None:
    cursor = connection.pooled.cursor()
    cursor.execute(sql)
    cursor.close()


@needs_postgresql
def test_statements_dropped_on_the_server_are_prepared_again(
    app: Flask, client: FlaskClient, admin: Admin
) -> None:
    # What DISCARD ALL does, or a pooler handing our statement to a server connection
    # that never saw its PREPARE.
    created = pass_read_once(client, admin)
    assert client.get(pass_url(created), headers=auth(created)).status_code == 200
    for connection in idle_connections(app):
        run_on(connection, "DEALLOCATE ALL")

    assert_both_paths_read(client, created)


@needs_postgresql
def test_a_statement_already_prepared_on_the_server_is_used_as_it_is(
    app: Flask, client: FlaskClient, admin: Admin
) -> None:
    # Behind a pooler, the server connection may hold our statement from another client:
    # PREPARE then fails with "already exists", and the statement (named after its SQL)
    # is the very one we need.
    created = pass_read_once(client, admin)
    for connection in idle_connections(app):
        connection.prepared.clear()

    assert_both_paths_read(client, created)


@needs_postgresql
def test_a_statement_prepared_before_a_schema_change_is_planned_again(app: Flask) -> None:
    # A migration run while the web processes hold their connections: PostgreSQL refuses
    # the old plan ("cached plan must not change result type"), and the read is redone.
    probe = sa.Table(
        "reads_probe",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("value", sa.Integer),
    )
    read = sa.select(probe.c.value)
    with app.app_context():
        engine = db.engine
        reads = Reads(engine)
        probe.create(engine)
        try:
            with engine.begin() as connection:
                connection.execute(probe.insert().values(id=1, value=7))
            assert reads.rows(read, {}) == [(7,)]
            with engine.begin() as connection:
                connection.execute(sa.text("ALTER TABLE reads_probe ALTER COLUMN value TYPE text"))

            assert reads.rows(read, {}) == [("7",)]
        finally:
            reads.close()
            probe.drop(engine)
