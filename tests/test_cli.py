"""`flask passes ...` commands."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from tests.conftest import Admin
from tests.pkpass_tools import openssl_verify, pass_json, unzip
from tests.test_webservice import DEVICE, register

PASS_TYPE = "pass.com.example.test"

ICON = Path(__file__).parent.parent / "pass_templates/storecard/icon.png"


def test_create_update_export_and_list(
    runner: FlaskCliRunner, tmp_path: Path, chain_files: dict[str, Path]
) -> None:
    created = runner.invoke(
        args=[
            "passes",
            "create",
            "--template",
            "storecard",
            "--serial",
            "cli-1",
            "--data",
            '{"logoText": "CLI"}',
        ]
    )
    assert created.exit_code == 0, created.output
    assert "cli-1" in created.output

    data_file = tmp_path / "change.json"
    data_file.write_text(json.dumps({"logoText": "Changed"}))
    updated = runner.invoke(
        args=[
            "passes",
            "update",
            "cli-1",
            "--data-file",
            str(data_file),
            "--file",
            f"thumbnail.png={ICON}",
        ]
    )
    assert updated.exit_code == 0, updated.output

    output = tmp_path / "out.pkpass"
    exported = runner.invoke(args=["passes", "export", "cli-1", "-o", str(output)])
    assert exported.exit_code == 0, exported.output
    pkpass = output.read_bytes()
    assert pass_json(pkpass)["logoText"] == "Changed"
    assert unzip(pkpass)["thumbnail.png"] == ICON.read_bytes()
    assert openssl_verify(unzip(pkpass), chain_files["root"], tmp_path / "v").returncode == 0

    listed = runner.invoke(args=["passes", "list"])
    assert "cli-1" in listed.output


def test_bad_input_exits_non_zero_with_a_message(runner: FlaskCliRunner) -> None:
    unknown = runner.invoke(args=["passes", "update", "no-such-serial", "--data", "{}"])
    assert unknown.exit_code == 1
    assert "no pass" in unknown.output
    bad_json = runner.invoke(args=["passes", "create", "--data", "{oops"])
    assert bad_json.exit_code == 2
    assert "not valid JSON" in bad_json.output
    bad_template = runner.invoke(args=["passes", "create", "--template", "nope"])
    assert bad_template.exit_code == 1
    assert "no template named 'nope'" in bad_template.output


def pass_path(created: dict[str, Any]) -> str:
    return f"/api/passes/{created['passTypeIdentifier']}/{created['serialNumber']}"


def invoke(runner: FlaskCliRunner, *args: str) -> Result:
    result = runner.invoke(args=["passes", *args])
    # A command that fails says so in a line; an exception escaping it would be a traceback.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_show_prints_state_link_devices_and_data(
    runner: FlaskCliRunner, admin: Admin, client: FlaskClient
) -> None:
    created = admin.create_pass(serialNumber="show-1", **{"pass": {"logoText": "Shown"}})
    assert register(client, created).status_code == 201
    shown = invoke(runner, "show", "show-1")
    assert shown.exit_code == 0, shown.output
    assert "state:         valid" in shown.output
    assert f"download link: {created['downloadURL']}" in shown.output
    assert "devices:       1" in shown.output
    assert f"{DEVICE}\ttoken " in shown.output
    assert '"logoText": "Shown"' in shown.output
    as_json = invoke(runner, "show", "show-1", "--json")
    assert json.loads(as_json.output) == admin.get(pass_path(created)).get_json()


def test_void_and_expire_change_the_pass_as_the_admin_api_does(
    runner: FlaskCliRunner, admin: Admin
) -> None:
    created = admin.create_pass(serialNumber="state-1")
    voided = invoke(runner, "void", "state-1")
    assert voided.exit_code == 0, voided.output
    assert admin.get(pass_path(created)).get_json()["pass"]["voided"] is True
    assert "state:         voided" in invoke(runner, "show", "state-1").output

    admin.create_pass(serialNumber="state-2")
    expired = invoke(runner, "expire", "state-2", "--date", "2026-12-31T23:59:00Z")
    assert expired.exit_code == 0, expired.output
    assert "expires 2026-12-31T23:59:00Z" in expired.output
    now = invoke(runner, "expire", "state-2")
    assert now.exit_code == 0, now.output
    assert "state:         expired" in invoke(runner, "show", "state-2").output


@pytest.mark.parametrize("date", ["tomorrow", "2026-12-31", "2026-12-31T23:59:00"])
def test_expire_refuses_what_the_admin_api_refuses_and_changes_nothing(
    runner: FlaskCliRunner, admin: Admin, date: str
) -> None:
    created = admin.create_pass(serialNumber="bad-date")
    refused = invoke(runner, "expire", "bad-date", "--date", date)
    assert refused.exit_code == 1
    assert "ISO 8601" in refused.output
    api = admin.post(pass_path(created) + "/expire", json={"expirationDate": date})
    assert api.status_code == 400
    after = admin.get(pass_path(created)).get_json()
    assert after["updateTag"] == created["updateTag"] and "expirationDate" not in after["pass"]


def test_registrations_and_logs_list_what_the_admin_api_lists(
    runner: FlaskCliRunner, admin: Admin, client: FlaskClient
) -> None:
    created = admin.create_pass(serialNumber="reg-1")
    assert invoke(runner, "registrations", "reg-1").output == "no device holds this pass\n"
    register(client, created)
    listed = invoke(runner, "registrations", "reg-1")
    assert listed.exit_code == 0 and listed.output.startswith(f"{DEVICE}\ttoken ")
    as_json = json.loads(invoke(runner, "registrations", "reg-1", "--json").output)
    assert as_json == admin.get(pass_path(created) + "/registrations").get_json()

    client.post("/wallet/v1/log", json={"logs": ["first message", "second message"]})
    logs = invoke(runner, "logs", "--limit", "1")
    assert logs.exit_code == 0 and logs.output.endswith("\tsecond message\n")
    assert json.loads(invoke(runner, "logs", "--json").output) == admin.get("/api/logs").get_json()
    assert invoke(runner, "logs", "--limit", "0").exit_code == 2


def test_every_command_on_one_pass_takes_its_serial_and_checks_type(
    runner: FlaskCliRunner, admin: Admin, tmp_path: Path
) -> None:
    admin.create_pass(serialNumber="typed")
    commands = [
        ["show"],
        ["export", "-o", str(tmp_path / "typed.pkpass")],
        ["registrations"],
        ["void"],
        ["expire"],
        ["push"],
        ["update", "--data", "{}"],
    ]
    for command in commands:
        named = invoke(runner, *command, "typed", "--type", PASS_TYPE)
        assert named.exit_code == 0, (command, named.output)
        other = invoke(runner, *command, "typed", "--type", "pass.com.example.other")
        assert other.exit_code == 2, (command, other.output)
        assert f"not a pass type of this server, which signs {PASS_TYPE}" in other.output
        unknown = invoke(runner, *command, "no-such-serial")
        assert unknown.exit_code == 1, (command, unknown.output)
        assert f"error: no pass {PASS_TYPE}/no-such-serial" in unknown.output
    # The old form, push PASS_TYPE_ID SERIAL, is refused rather than half-understood.
    assert invoke(runner, "push", PASS_TYPE, "typed").exit_code == 2


def test_bad_paths_give_one_line_errors(runner: FlaskCliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    file_arg = invoke(runner, "create", "--file", f"thumbnail.png={missing}")
    assert file_arg.exit_code == 2
    assert f"{missing} cannot be read (No such file or directory)" in file_arg.output
    data_file = invoke(runner, "create", "--data-file", str(missing))
    assert data_file.exit_code == 2 and "does not exist" in data_file.output
    invoke(runner, "create", "--template", "storecard", "--serial", "paths")
    unwritable = invoke(runner, "export", "paths", "-o", str(missing / "out.pkpass"))
    assert unwritable.exit_code == 1
    assert (
        unwritable.output
        == f"Error: cannot write {missing / 'out.pkpass'} (No such file or directory)\n"
    )
    nested = tmp_path / "deep.json"
    nested.write_text("[" * 100_000)
    too_deep = invoke(runner, "create", "--data-file", str(nested))
    assert too_deep.exit_code == 2


def test_a_database_without_tables_is_one_line_naming_the_fix(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    empty = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'empty.db'}")
    for command in (["list"], ["show", "any"], ["logs"]):
        result = invoke(empty.test_cli_runner(), *command)
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error: the database cannot be used (no such table: ")
        assert "run `flask db upgrade`" in result.output
        assert len(result.output.splitlines()) == 1


def test_webhook_endpoints_are_managed_as_through_the_admin_api(
    runner: FlaskCliRunner, admin: Admin
) -> None:
    added = runner.invoke(
        args=["passes", "webhooks", "add", "https://hooks.example.com/in?key=k1"]
        + ["--event", "pass.registered", "--json"]
    )
    assert added.exit_code == 0, added.output
    endpoint = json.loads(added.output)
    assert endpoint["secret"].startswith("whsec_") and endpoint["events"] == ["pass.registered"]

    listed = runner.invoke(args=["passes", "webhooks", "list", "--json"])
    assert json.loads(listed.output) == admin.get("/api/webhooks").get_json()
    text = runner.invoke(args=["passes", "webhooks", "list"]).output
    assert f"{endpoint['id']}\thttps://hooks.example.com/in?…\tpass.registered" in text
    assert "k1" not in text and endpoint["secret"] not in text

    messages = runner.invoke(args=["passes", "webhooks", "messages", "--json"])
    assert json.loads(messages.output) == admin.get("/api/webhooks/messages").get_json()

    removed = runner.invoke(args=["passes", "webhooks", "remove", endpoint["id"]])
    assert removed.exit_code == 0 and admin.get("/api/webhooks").get_json()["endpoints"] == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["add", "ftp://example.com/hook"], "$.url"),
        (["add", "https://example.com/hook", "--secret", "short"], "$.secret"),
        (["add", "https://example.com/hook", "--event", "pass.eaten"], "pass.eaten"),
        (["remove", "999"], "no webhook endpoint has this id"),
    ],
)
def test_bad_webhook_commands_are_one_line_errors(
    runner: FlaskCliRunner, args: list[str], says: str
) -> None:
    result = runner.invoke(args=["passes", "webhooks", *args])
    assert result.exit_code != 0
    assert says in result.output and "Traceback" not in result.output
