"""The migrations build exactly the schema the models describe (what `flask db check` does)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_migrate import downgrade, upgrade

from models import db


def test_the_migrated_schema_matches_the_models(app: Flask) -> None:
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": False}
        )
        differences = compare_metadata(context, db.metadata)
    assert differences == []


@pytest.fixture
def scratch_database(database_uri: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the kind the suite runs on, for migrating step by step."""
    if not database_uri.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'scratch.db'}"
        return
    url = sa.make_url(database_uri)
    name = f"{url.database}_scratch"
    server = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def test_waiting_pushes_keep_their_device_and_get_its_pass_type_in_0008(
    make_app: Callable[..., Flask], scratch_database: str
) -> None:
    app = make_app(SQLALCHEMY_DATABASE_URI=scratch_database)
    now = "2026-01-01 00:00:00+00:00"
    with app.app_context():
        upgrade(revision="0007")
        for statement in (
            "INSERT INTO devices (id, device_library_identifier, push_token, created_at, "
            f"updated_at) VALUES (1, 'd1', 'ab', '{now}', '{now}'), (2, 'd2', 'cd', '{now}', "
            f"'{now}')",
            "INSERT INTO passes (id, pass_type_identifier, serial_number, data, update_tag, "
            f"updated_at, shares_second_with_previous, created_at) VALUES (1, 'pass.a', 's', "
            f"'{{}}', 1, '{now}', false, '{now}')",
            f"INSERT INTO registrations (device_id, pass_id, created_at) VALUES (1, 1, '{now}')",
            # Device 2 holds nothing any more: nothing to push it for.
            "INSERT INTO pending_pushes (device_id, version, attempts, due_at, created_at) "
            f"VALUES (1, 3, 0, '{now}', '{now}'), (2, 1, 0, '{now}', '{now}')",
        ):
            db.session.execute(sa.text(statement))
        db.session.commit()
        upgrade()
        rows = db.session.execute(
            sa.text("SELECT device_id, pass_type_identifier, version FROM pending_pushes")
        ).all()
        assert [tuple(row) for row in rows] == [(1, "pass.a", 3)]
        db.session.remove()
        downgrade(revision="0007")
        rows = db.session.execute(sa.text("SELECT device_id, version FROM pending_pushes")).all()
        assert [tuple(row) for row in rows] == [(1, 3)]
        db.session.remove()
        db.engine.dispose()
