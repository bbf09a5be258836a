"""Trying the service without Apple: the development chain, its warnings, and the README's
commands run as written on a machine where nothing is configured."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from passes import context, links, store
from passes.certificate_chain import DEVELOPMENT_PASS_TYPE_IDENTIFIER, make_chain
from tests.conftest import ADMIN_TOKEN, Admin
from tests.pkpass_tools import openssl_verify, unzip
from tests.test_worker import wait_until

ROOT = Path(__file__).resolve().parent.parent
BANNER = 'id="development-certificate"'
NO_CERTIFICATE = {"PASS_CERTIFICATE": None, "WWDR_CERTIFICATE": None}


@pytest.fixture
def development_app(make_app: Callable[..., Flask], tmp_path: Path) -> Callable[..., Flask]:
    """Apps as `python app.py` makes them with no certificate, their chain in tmp_path."""

    def make(**overrides: Any) -> Flask:
        settings = {"TESTING": False, "DEVELOPMENT": True, **NO_CERTIFICATE}
        return make_app(**settings, DEVELOPMENT_CHAIN_DIR=str(tmp_path / "chain"), **overrides)

    return make


def test_development_makes_a_chain_on_first_start_and_reuses_it(
    development_app: Callable[..., Flask], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = development_app()
    with first.app_context():
        credentials = context.credentials(DEVELOPMENT_PASS_TYPE_IDENTIFIER)
        assert credentials.pass_type_identifier == DEVELOPMENT_PASS_TYPE_IDENTIFIER
        assert credentials.team_identifier == "DEVTEAM000"
    assert "made now in" in caplog.text and "iPhones refuse" in caplog.text
    assert "PASS_CERTIFICATE" in caplog.text
    chain = tmp_path / "chain"
    kept = {name: (chain / name).read_bytes() for name in ("root.pem", "wwdr.pem", "pass.pem")}
    assert (chain / "pass.pem").stat().st_mode & 0o077 == 0  # the key is the owner's only

    caplog.clear()
    second = development_app()
    assert "kept in" in caplog.text
    assert {name: (chain / name).read_bytes() for name in kept} == kept
    with second.app_context():
        assert (
            context.credentials(DEVELOPMENT_PASS_TYPE_IDENTIFIER).certificate
            == credentials.certificate
        )


def test_a_development_chain_about_to_expire_is_made_again(
    development_app: Callable[..., Flask], tmp_path: Path
) -> None:
    old = make_chain(
        DEVELOPMENT_PASS_TYPE_IDENTIFIER,
        "DEVTEAM000",
        not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=5),
    )
    chain = tmp_path / "chain"
    chain.mkdir()
    (chain / "root.pem").write_bytes(old.root.cert_pem())
    (chain / "wwdr.pem").write_bytes(old.wwdr.cert_pem())
    (chain / "pass.pem").write_bytes(old.pass_cert.key_pem() + old.pass_cert.cert_pem())
    app = development_app()
    with app.app_context():
        renewed = context.credentials(DEVELOPMENT_PASS_TYPE_IDENTIFIER).certificate
    assert renewed != old.pass_cert.cert
    assert renewed.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=4 * 365)


def test_passes_signed_with_the_development_chain_verify_against_its_root(
    development_app: Callable[..., Flask], tmp_path: Path
) -> None:
    app = development_app()
    admin = Admin(app.test_client())
    created = admin.create_pass(serialNumber="dev-1")
    assert created["passTypeIdentifier"] == DEVELOPMENT_PASS_TYPE_IDENTIFIER
    pkpass = admin.get(f"/api/passes/{DEVELOPMENT_PASS_TYPE_IDENTIFIER}/dev-1/pkpass").data
    verified = openssl_verify(unzip(pkpass), tmp_path / "chain" / "root.pem", tmp_path / "v")
    assert verified.returncode == 0, verified.stderr


def test_every_page_says_iphones_refuse_development_passes(
    development_app: Callable[..., Flask],
) -> None:
    app = development_app()
    client = app.test_client()
    Admin(client).create_pass(serialNumber="banner")
    with app.app_context():
        link = links.download_url(store.get_pass(DEVELOPMENT_PASS_TYPE_IDENTIFIER, "banner"))
    pages = {
        "public pass page": client.get(link.removeprefix(app.config["PUBLIC_URL"])),
        "public error page": client.get("/p/not-a-valid-link"),
        "dashboard sign-in": client.get("/admin/login"),
    }
    for name, page in pages.items():
        text = page.get_data(as_text=True)
        assert BANNER in text and "iPhones refuse" in text, name
        assert "PASS_CERTIFICATE" in text, name
    client.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf_token": csrf(client)})
    assert BANNER in client.get("/admin/").get_data(as_text=True)


def csrf(client: Any) -> str:
    page = client.get("/admin/login").get_data(as_text=True)
    return page.split('name="csrf_token" value="')[1].split('"')[0]


def test_production_without_a_certificate_makes_no_chain_and_refuses_to_sign(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    app = make_app(TESTING=False, **NO_CERTIFICATE, DEVELOPMENT_CHAIN_DIR=str(tmp_path / "c"))
    assert not (tmp_path / "c").exists()
    client = app.test_client()
    refused = Admin(client).post("/api/passes", json={"template": "storecard"})
    assert refused.status_code == 503
    assert "No pass certificate is configured" in refused.get_json()["message"]
    assert BANNER not in client.get("/admin/login").get_data(as_text=True)


def test_pages_signed_with_a_real_certificate_show_no_banner(admin: Admin) -> None:
    created = admin.create_pass()
    page = admin.client.get(created["downloadURL"].removeprefix("https://passes.example.test"))
    assert page.status_code == 200 and BANNER not in page.get_data(as_text=True)


# --- The README's commands, in processes of their own -----------------------------------


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the project, so that its instance/ folder is the test's: app.py copied
    (the instance folder sits beside it), the rest linked."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("app.py", "models.py"):
        shutil.copy(ROOT / name, project / name)
    for name in ("passes", "migrations", "pass_templates"):
        (project / name).symlink_to(ROOT / name)
    return project


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """What a fresh shell has: no APP_ENV, no secret, no certificate."""
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8", **extra}


def flask(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # `.venv/bin/flask` in the README: the same entry point as `python -m flask`.
    return subprocess.run(
        [sys.executable, "-m", "flask", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_help_needs_no_configuration_and_prints_no_log_line(checkout: Path, tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    group = flask(checkout, env, "passes", "--help")
    assert group.returncode == 0, group.stderr
    assert group.stdout.startswith("Usage: python -m flask passes [OPTIONS] COMMAND")
    assert group.stderr == ""
    commands = [
        line.split()[0] for line in group.stdout.split("Commands:\n")[1].splitlines() if line
    ]
    assert {"show", "void", "expire", "registrations", "logs", "push"} <= set(commands)
    # Every subcommand's --help, each through the `flask` entry point in this process.
    script = (
        "import sys\nfrom flask.cli import main\n"
        f"for command in {commands!r}:\n"
        "    sys.argv = ['flask', 'passes', command, '--help']\n"
        "    try:\n        main()\n    except SystemExit as stop:\n"
        "        assert stop.code == 0, (command, stop.code)\n"
    )
    each = subprocess.run(
        [sys.executable, "-c", script],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert each.returncode == 0, each.stderr
    assert each.stderr == ""
    assert each.stdout.count("Usage: flask passes ") == len(commands)
    for level in ("INFO", "WARNING", "ERROR"):
        assert f" {level} " not in each.stdout + group.stdout


def test_help_of_a_configured_deployment_prints_no_log_line_either(
    checkout: Path, tmp_path: Path, chain_files: dict[str, Path]
) -> None:
    env = clean_env(
        tmp_path,
        SECRET_KEY="a-production-secret-key-that-is-long",
        PUBLIC_URL="https://passes.example.com",
        PASS_CERTIFICATE=str(chain_files["pass_pem"]),
        WWDR_CERTIFICATE=str(chain_files["wwdr"]),
    )
    shown = flask(checkout, env, "passes", "show", "--help")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("Usage: python -m flask passes show [OPTIONS] SERIAL")
    assert shown.stderr == "" and "signing" not in shown.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(checkout: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`python app.py` (the quickstart) in a clean environment: its URL and its log."""
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "app.py"],
            cwd=checkout,
            env=clean_env(tmp_path, PORT=str(port)),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url + "/healthz") or process.poll() is not None, "the server")
        assert process.poll() is None, log.read_text()
        yield url, log
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except urllib.error.HTTPError:
        return True  # 503 is an answer: the server is up
    except OSError:
        return False


def test_quickstart_then_cli_create_and_export_with_no_configuration(
    server: tuple[str, Path], checkout: Path, tmp_path: Path
) -> None:
    url, log = server
    started = log.read_text()
    assert "signing with a development certificate" in started and "iPhones refuse" in started
    # No ADMIN_TOKEN: the dashboard says how to turn it on, under the banner.
    with pytest.raises(urllib.error.HTTPError) as disabled:
        urllib.request.urlopen(url + "/admin/login")
    assert BANNER in disabled.value.read().decode()

    env = clean_env(tmp_path)
    created = flask(checkout, env, "passes", "create", "--template", "storecard")
    assert created.returncode == 0, created.stderr
    assert "Traceback" not in created.stderr
    assert "iPhones refuse" in created.stderr  # said where the pass is made, not as a log
    serial = created.stdout.split()[2]
    assert created.stdout.startswith(f"created {DEVELOPMENT_PASS_TYPE_IDENTIFIER} {serial}\n")
    exported = flask(checkout, env, "passes", "export", serial)
    assert exported.returncode == 0, exported.stderr
    pkpass = (checkout / f"{serial}.pkpass").read_bytes()
    root = checkout / "instance" / "development-chain" / "root.pem"
    verified = openssl_verify(unzip(pkpass), root, tmp_path / "v")
    assert verified.returncode == 0, verified.stderr
    # The server and the command signed with the same chain, made once.
    assert started.count("made now in") == 1


def test_the_cli_stays_in_production_where_a_deployment_is_configured(
    checkout: Path, tmp_path: Path
) -> None:
    env = clean_env(
        tmp_path,
        SECRET_KEY="a-production-secret-key-that-is-long",
        PUBLIC_URL="https://passes.example.com",
    )
    assert flask(checkout, env, "db", "upgrade").returncode == 0
    refused = flask(checkout, env, "passes", "create", "--template", "storecard")
    assert refused.returncode == 1
    assert "No pass certificate is configured" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (checkout / "instance" / "development-chain").exists()
    # Named explicitly, production needs its secret even for the `flask` command.
    stopped = flask(checkout, clean_env(tmp_path, APP_ENV="production"), "passes", "list")
    assert stopped.returncode == 3 and "SECRET_KEY is not set" in stopped.stderr
