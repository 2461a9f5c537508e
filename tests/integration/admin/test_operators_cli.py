"""`distributor operators ...` in-process, on a fresh SQLite database."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from distributor.cli import app
from tests.conftest import CONFIG


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'var' / 'distributor.db'}")
    runner = CliRunner()

    def invoke(*args: str, code: int = 0, input: str | None = None):  # noqa: A002
        result = runner.invoke(app, ["--config", str(CONFIG), *args], input=input, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    invoke("init")
    return invoke


def test_add_list_set_role_set_password_remove(cli, tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("a long enough password\n")
    assert "added operator priya (admin)" in cli("operators", "add", "priya", "--role", "admin", "--password-file", str(secret)).output
    # Prompted twice, never echoed.
    added = cli("operators", "add", "ravi", "--role", "viewer", input="another long password\nanother long password\n")
    assert "another long password" not in added.output
    listed = json.loads(cli("operators", "list", "--json").stdout)
    assert [(o["name"], o["role"], o["last_login_at"]) for o in listed] == [("priya", "admin", None), ("ravi", "viewer", None)]
    assert "ravi is now editor" in cli("operators", "set-role", "ravi", "editor").output
    assert "sessions were ended" in cli("operators", "set-password", "ravi", "--password-file", str(secret)).output
    assert "removed operator ravi" in cli("operators", "remove", "ravi").output
    assert "priya" in cli("operators", "list").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("operators", "add", "x", "--role", "owner"), "role 'owner'"),
        (("operators", "add", "Bad Name", "--role", "admin"), "operator name"),
        (("operators", "remove", "ghost"), "no operator 'ghost'"),
    ],
)
def test_bad_values_are_named(cli, tmp_path, args, message):
    secret = tmp_path / "pw"
    secret.write_text("a long enough password\n")
    extra = ("--password-file", str(secret)) if args[1] == "add" else ()
    result = cli(*args, *extra, code=1)
    assert message in result.output


def test_a_short_password_is_refused_and_nothing_is_added(cli, tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("short\n")
    assert "at least 12 characters" in cli("operators", "add", "a", "--role", "admin", "--password-file", str(secret), code=1).output
    assert json.loads(cli("operators", "list", "--json").stdout) == []


def test_the_demo_prints_a_one_time_login_that_works(settings, sqlite_store, monkeypatch):
    from distributor import operators
    from distributor.cli.operations import _console_lines

    first = _console_lines(settings, sqlite_store, "127.0.0.1", 8000)
    assert first[:2] == ["subscribe page: http://127.0.0.1:8000/subscribe", "console: http://127.0.0.1:8000/admin"]
    name, password = first[2].removeprefix("console demo login (shown once): ").split(" / ")
    assert operators.authenticate(sqlite_store, name, password).role == "admin"
    assert _console_lines(settings, sqlite_store, "127.0.0.1", 8000) == first[:2]  # once


def test_outside_the_demo_no_account_is_made(settings, sqlite_store, monkeypatch):
    from distributor import operators
    from distributor.cli.operations import _console_lines

    lines = _console_lines(settings, sqlite_store, "0.0.0.0", 8000)
    assert "no operators yet" in lines[-1]
    assert operators.count(sqlite_store) == 0
