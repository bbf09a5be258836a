"""Fixtures: a fake Apple chain, the app on SQLite or PostgreSQL, clients and runners.

Set TEST_DATABASE_URL to run the whole suite against PostgreSQL (CI does both).
Tests commit for real (several of them use threads), so every table is emptied after
each test instead of rolling back an outer transaction.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from flask_migrate import upgrade

from app import create_app, database_url
from models import PassTemplate, TemplateVersion, db
from passes import context, delivery, pass_templates
from tests.apple_chain import FakeAppleChain, make_chain

# The fake APNs server and its fixtures (apns_server, apns_settings, apns_chain), and the
# push tests' fixtures (apns, push_app).
pytest_plugins = ["tests.apns_server", "tests.pushes"]

SECRET_KEY = "test-secret-key-that-is-long-enough"
ADMIN_TOKEN = "test-admin-token-of-24-characters"
PUBLIC_URL = "https://passes.example.test"
P12_PASSWORD = "p12-password"
# Emptied otherwise after each test: the update counter's single row, and the templates
# (below).
KEPT_TABLES = {"update_counter", "templates", "template_versions", "template_files"}


@pytest.fixture(scope="session")
def chain() -> FakeAppleChain:
    return make_chain()


@pytest.fixture(scope="session")
def chain_files(chain: FakeAppleChain, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return chain.write(tmp_path_factory.mktemp("chain"), password=P12_PASSWORD.encode())


@pytest.fixture(scope="session")
def database_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return database_url(url, "")
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def base_config(chain_files: dict[str, Path], database_uri: str) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_uri,
        "SECRET_KEY": SECRET_KEY,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "PUBLIC_URL": PUBLIC_URL,
        "PASS_CERTIFICATE": str(chain_files["pass_p12"]),
        "PASS_CERTIFICATE_PASSWORD": P12_PASSWORD,
        "WWDR_CERTIFICATE": str(chain_files["wwdr"]),
        "PUSH_MODE": "off",
        # Unpaced unless a test paces it (tests/test_pacing.py).
        "PUSH_RATE": 0,
        "PUSH_QUEUE_SECONDS": 0,
    }


def process_env(
    database_uri: str, chain_files: dict[str, Path], **settings: object
) -> dict[str, str]:
    """A production process's environment (a worker, gunicorn, a command) on the test
    database, with `settings` added."""
    return {
        "PATH": os.environ["PATH"],
        "APP_ENV": "production",
        "DATABASE_URL": database_uri,
        "SECRET_KEY": SECRET_KEY,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "PUBLIC_URL": PUBLIC_URL,
        "PASS_CERTIFICATE": str(chain_files["pass_p12"]),
        "PASS_CERTIFICATE_PASSWORD": P12_PASSWORD,
        "WWDR_CERTIFICATE": str(chain_files["wwdr"]),
        **{name: str(value) for name, value in settings.items()},
    }


# Apps made by make_app(): their background threads end with the test (_empty_tables).
MADE_APPS: list[Flask] = []


@pytest.fixture(scope="session")
def make_app(base_config: dict[str, Any]) -> Callable[..., Flask]:
    """Another app on the same database, with some settings changed."""

    def make(**overrides: Any) -> Flask:
        made = create_app({**base_config, **overrides})
        MADE_APPS.append(made)
        return made

    return make


@pytest.fixture(scope="session")
def app(make_app: Callable[..., Flask]) -> Flask:
    app = make_app()
    with app.app_context():
        upgrade()  # the schema comes from the migrations, so they are tested too
    import_templates(app)
    return app


def import_templates(app: Flask) -> None:
    """The sample templates, as the server imports them when it starts."""
    with app.app_context():
        pass_templates.import_folders(Path(app.config["PASS_TEMPLATES_DIR"]))


@pytest.fixture(autouse=True)
def _empty_tables(app: Flask) -> Iterator[None]:
    yield
    for limiter in app.extensions.get("limiter", ()):
        limiter.reset()  # wrong admin tokens counted by one test do not carry into the next
    # Nothing a test started writes into the next one: an app's recorder, inline pusher or
    # webhook deliverer would otherwise go on in its thread, on this shared database.
    for made in MADE_APPS:
        if made is not app:
            context.runtime_of(made).stop()
    MADE_APPS[:] = [app]
    delivery.recorder_of(app).flush()
    with app.app_context():
        db.session.rollback()
        for table in reversed(db.metadata.sorted_tables):
            if table.name not in KEPT_TABLES:
                db.session.execute(sa.delete(table))
        # The sample templates as imported stay (checking them before every test is slow);
        # any other template, or a sample a test changed, goes (versions and files too).
        changed = sa.select(TemplateVersion.template_id).where(
            sa.or_(TemplateVersion.source != pass_templates.FOLDER, TemplateVersion.version > 1)
        )
        samples = pass_templates.template_folders(Path(app.config["PASS_TEMPLATES_DIR"]))
        db.session.execute(
            sa.delete(PassTemplate).where(
                sa.or_(PassTemplate.id.in_(changed), PassTemplate.name.not_in(list(samples)))
            )
        )
        db.session.commit()
    import_templates(app)  # the next test finds the sample templates, as after a start


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


class Admin:
    """The admin API with the bearer token filled in."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.client.post(url, headers=self.headers, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> Any:
        return self.client.patch(url, headers=self.headers, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, headers=self.headers, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Any:
        return self.client.put(url, headers=self.headers, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        return self.client.delete(url, headers=self.headers, **kwargs)

    def create_pass(self, **body: Any) -> dict[str, Any]:
        response = self.post("/api/passes", json={"template": "storecard", **body})
        assert response.status_code == 201, response.get_json()
        return response.get_json()


@pytest.fixture
def admin(client: FlaskClient) -> Admin:
    return Admin(client)
