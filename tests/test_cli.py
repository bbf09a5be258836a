"""`flask passes ...` commands."""

from __future__ import annotations

import json
from pathlib import Path

from flask.testing import FlaskCliRunner

from tests.pkpass_tools import openssl_verify, pass_json, unzip

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
