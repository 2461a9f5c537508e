"""The CLI end to end on the shipped sample: init, ingest, re-ingest, edited copy, editions."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distributor.cli import app
from distributor.settings import PROJECT_ROOT

from tests.conftest import CONFIG, FIXTURES

SAMPLE = PROJECT_ROOT / "config" / "samples" / "newsarena.xml"
EDITED = FIXTURES / "samples" / "newsarena-edited.xml"
SECTIONS = {"nation", "states", "international", "politics", "opinion", "economy", "sports", "entertainment"}


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run `distributor ...` in-process with the shipped config and a fresh var dir."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'var' / 'distributor.db'}")
    runner = CliRunner()

    def invoke(*args: str, code: int = 0):
        result = runner.invoke(app, ["--config", str(CONFIG), *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return invoke


def test_fresh_database_ingest_unchanged_then_edited(cli):
    assert "database ready" in cli("init").output
    first = json.loads(cli("ingest", str(SAMPLE), "--json").stdout)
    [report] = first
    assert report["ok"] and report["rejected"], report
    assert len(report["new"]) >= 24
    stored = json.loads(cli("articles", "--json", "--limit", "1000").stdout)
    assert {a["section"] for a in stored} == SECTIONS
    assert len(stored) == len(report["new"])

    [again] = json.loads(cli("ingest", str(SAMPLE), "--json").stdout)
    assert again["new"] == [] and again["updated"] == []
    # Every item parsed the first time (including the sample's duplicate) is unchanged.
    assert again["unchanged"] == len(report["new"]) + report["unchanged"]
    assert again["rejected"] == report["rejected"]

    [edited] = json.loads(cli("ingest", str(EDITED), "--json").stdout)
    assert edited["new"] == [] and len(edited["updated"]) == 1
    updated = [a for a in json.loads(cli("articles", "--json", "--limit", "1000").stdout) if a["version"] == 2]
    assert [a["key"] for a in updated] == edited["updated"]


def test_ingest_reports_bad_source_without_stopping_the_rest(cli, tmp_path):
    cli("init")
    broken = tmp_path / "broken.xml"
    broken.write_text("<html><body>not a feed</body></html>", encoding="utf-8")
    result = cli("ingest", str(tmp_path / "missing.xml"), str(broken), str(SAMPLE), code=1)
    lines = result.output.splitlines()
    assert any("missing.xml: FAILED" in l and "not found" in l for l in lines)
    assert any("broken.xml: FAILED" in l for l in lines)
    assert any("new," in l and "rejected" in l for l in lines)
    assert json.loads(cli("articles", "--json", "--section", "nation").stdout)


def test_commands_need_init_first(cli):
    result = cli("articles", code=2)
    assert "distributor init" in result.output


def test_edition_after_ingest_groups_by_section_with_trending_first(cli):
    cli("init")
    cli("ingest")  # the configured sample source, re-dated to now
    issue = json.loads(cli("edition", "morning", "--json").stdout)
    order = [s["slug"] for s in issue["sections"]]
    configured = ["nation", "states", "international", "politics", "opinion", "economy", "sports", "entertainment"]
    assert order == [s for s in configured if s in order] and len(order) >= 6
    assert issue["trending"], "the sample flags Trending articles"
    shown = [a["key"] for a in issue["trending"]] + [a["key"] for s in issue["sections"] for a in s["articles"]]
    assert len(shown) == len(set(shown))
    assert "TRENDING" in cli("edition", "morning").output


def test_edition_shows_one_readers_variant_with_sections(cli):
    cli("init")
    cli("ingest")
    everyone = json.loads(cli("edition", "morning", "--json").stdout)
    sports = json.loads(cli("edition", "morning", "--json", "--sections", "sports").stdout)
    assert [s["slug"] for s in sports["sections"]] == ["sports"]
    shown = sports["trending"] + sports["sections"][0]["articles"]
    assert shown and all(a["section"] == "sports" for a in shown) and sports["count"] == len(shown)
    in_everyone = [a["key"] for a in everyone["trending"]] + [a["key"] for s in everyone["sections"] for a in s["articles"]]
    assert everyone["count"] == len(in_everyone)
    wrong = cli("edition", "morning", "--sections", "sports science", code=2).output
    assert "--sections: unknown section 'science'" in wrong


def test_unknown_edition_and_section_are_clear_errors(cli):
    cli("init")
    assert "unknown edition 'noon'" in cli("edition", "noon", code=2).output
    assert "unknown section 'science'" in cli("articles", "--section", "science", code=2).output


def test_pin_and_unpin(cli):
    cli("init")
    assert "pinned https://x/a" in cli("trending", "pin", "https://x/a").output
    assert "already pinned" in cli("trending", "pin", "https://x/a").output
    assert "https://x/a  (pinned)" in cli("trending").output
    cli("trending", "unpin", "https://x/a")
    cli("trending", "unpin", "https://x/a", code=1)


def test_config_check_bad_key_exits_2_naming_file_and_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(CONFIG.read_text(encoding="utf-8").replace("[site]\n", "[site]\nnmae = 'x'\n", 1), encoding="utf-8")
    result = CliRunner().invoke(app, ["--config", str(bad), "config", "check"])
    assert result.exit_code == 2
    assert f"{bad}: site.nmae: unknown key" in result.output
    assert "config: " in CliRunner().invoke(app, ["--config", str(CONFIG), "config", "check"]).output


def test_secrets_never_printed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SECRET_KEY", "very-secret-signing-key")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:SECRET-TOKEN")
    monkeypatch.setenv("DATABASE_URL", "postgresql://user:db-password@127.0.0.1:1/none")
    result = CliRunner().invoke(app, ["--config", str(CONFIG), "config", "check"])
    for secret in ("very-secret-signing-key", "SECRET-TOKEN", "db-password"):
        assert secret not in result.output


def test_main_job_once_from_the_console_script(tmp_path):
    """`distributor run --once` with nothing configured: SQLite under var/, the sample
    ingested, each edition sent once to the demo subscribers and channels as outbox files."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DISTRIBUTOR_CONFIG", "REDIS_URL", "SMTP_URL", "TELEGRAM_BOT_TOKEN"}}
    env["DISTRIBUTOR_CONFIG"] = str(CONFIG)
    # --once serves no web app, so its port may be taken by anything.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = subprocess.run(
            [sys.executable, "-m", "distributor", "run", "--once", "--port", str(taken.getsockname()[1])],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "var" / "distributor.db").exists()
    emails = sorted((tmp_path / "var" / "outbox" / "email").glob("*.eml"))
    posts = sorted((tmp_path / "var" / "outbox" / "telegram").glob("*.json"))
    assert emails and posts
    assert f"outbox: {len(emails)} email file(s) in {tmp_path / 'var' / 'outbox' / 'email'}" in done.stdout
    assert "morning: run #1 sent" in done.stdout
    # A second start sends no edition again: each has run once in this database.
    again = subprocess.run(
        [sys.executable, "-m", "distributor", "run", "--once"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert again.returncode == 0 and "run #" not in again.stdout
    assert sorted((tmp_path / "var" / "outbox" / "email").glob("*.eml")) == emails


def test_preview_writes_email_and_telegram_calls_and_send_posts_digests(cli, tmp_path):
    cli("init")
    cli("ingest")
    cli("subscribers", "add", "reader@example.com", "--confirmed")
    out = tmp_path / "preview"
    cli("preview", "morning", "--out", str(out))
    assert sorted(p.name for p in out.iterdir()) == ["email.eml", "email.html", "email.txt", "telegram.json"]
    calls = json.loads((out / "telegram.json").read_text(encoding="utf-8"))
    assert calls and all(set(c) == {"method", "params"} for c in calls)
    assert {c["params"]["chat_id"] for c in calls} == {"@newsarena"}  # main takes morning; sports does not
    assert not list((tmp_path / "var" / "outbox").glob("**/*.eml")), "preview sends nothing"

    sent = cli("send", "morning", "--force").stdout
    assert "email: queued 0, sent 1" in sent and "telegram: main" in sent
    posts = [json.loads(p.read_text(encoding="utf-8")) for p in (tmp_path / "var" / "outbox" / "telegram").glob("*.json")]
    assert any(p["params"]["chat_id"] == "@newsarena" for p in posts)
    again = cli("send", "morning").stdout
    assert "already done" in again and "nothing sent" in again
