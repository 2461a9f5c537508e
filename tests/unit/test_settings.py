"""Settings: the shipped config loads; bad keys and values stop start-up with file, key, reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from distributor.errors import ConfigError
from distributor.settings import load_settings

from tests.conftest import CONFIG

SHIPPED = CONFIG.read_text(encoding="utf-8")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "distributor.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_has_news_arena_defaults():
    s = load_settings(CONFIG)
    assert s.site.name == "News Arena" and s.site.timezone == "Asia/Kolkata"
    assert [x.label for x in s.sections] == [
        "Nation", "States", "International", "Politics", "Opinion", "Economy", "Sports", "Entertainment",
    ]
    assert s.site.fallback_section == "nation"
    assert "/sports/" in s.section("sports").path_aliases and "Cricket" in s.section("sports").category_aliases
    assert {"morning", "evening", "weekly", "breaking"} <= set(s.editions)
    assert s.editions["morning"].default is True
    assert s.channels["sports"].sections == ("sports",)
    assert Path(s.source_location(s.file.sources[0])).exists()


def test_every_shipped_key_is_commented():
    # A key is documented by a comment right above it, or by an entry `#   key  text` in
    # the block comment that describes its table.
    import re

    lines = SHIPPED.splitlines()
    listed = {m.group(1) for l in lines if (m := re.match(r"^#\s{2,}(\w+)\s", l))}
    missing = []
    for index, line in enumerate(lines):
        match = re.match(r"^(\w+)\s*=", line)
        if match and match.group(1) not in listed and not lines[index - 1].startswith("#"):
            missing.append(f"line {index + 1}: {match.group(1)}")
    assert missing == []


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        (("[site]\n", "[site]\ncolour = \"red\"\n"), "site.colour", "unknown key"),
        (('timezone = "Asia/Kolkata"', 'timezone = "Asia/Calcutta-ish"'), "site.timezone", "unknown IANA timezone"),
        (('schedule = "0 7 * * *"', 'schedule = "0 25 * * *"'), "editions.morning.schedule", "cron"),
        (('fallback_section = "nation"', 'fallback_section = "science"'), "site.fallback_section", "not a configured section"),
        (('base_url = "https://www.newsarenaindia.com/"', 'base_url = "newsarenaindia.com"'), "site.base_url", "http(s) URL"),
        (('poll_minutes = 10', 'poll_minutes = 0'), "sources.0.poll_minutes", "greater than or equal to 1"),
        (('chat_id = "@newsarena"', 'chat_id = "newsarena"'), "channels.main.chat_id", "@username"),
        (('sections = ["sports"]', 'sections = ["cricket"]'), "channels.sports.sections", "unknown section"),
        (('window = 12', 'window = "yesterday"'), "editions.evening.window", ""),
        (("visibility_timeout_seconds = 7200", "visibility_timeout_seconds = 1800"), "celery", "must exceed retry_backoff_max_seconds"),
        (("retry_max_seconds = 7200", "retry_max_seconds = 60"), "email", "less than retry_first_seconds"),
        (("stall_seconds = 60", "stall_seconds = 5"), "scheduler.stall_seconds", "greater than or equal to 15"),
        (("lease_seconds = 30", "lease_seconds = 1"), "delivery.lease_seconds", "greater than or equal to 3"),
    ],
)
def test_bad_values_name_file_key_and_reason(tmp_path, change, key, reason):
    old, new = change
    assert old in SHIPPED
    path = write(tmp_path, SHIPPED.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert str(path) in message and key in message and reason in message


def test_times_and_days_become_cron_and_conflicts_are_refused(tmp_path):
    assert load_settings(CONFIG).editions["weekly"].schedule == "0 9 * * 0"
    both = SHIPPED.replace('times = ["09:00"]', 'times = ["09:00"]\nschedule = "0 9 * * 0"', 1)
    with pytest.raises(ConfigError, match="editions.weekly: .*either schedule"):
        load_settings(write(tmp_path, both))
    bad = SHIPPED.replace('times = ["09:00"]', 'times = ["9 am"]', 1)
    with pytest.raises(ConfigError, match="editions.weekly: times/days: '9 am' is not a HH:MM time"):
        load_settings(write(tmp_path, bad))


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[site\nname="))
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_environment_overrides_and_lookup_order(tmp_path, monkeypatch):
    path = write(tmp_path, SHIPPED.replace('name = "News Arena"', 'name = "Other Site"', 1))
    monkeypatch.setenv("DISTRIBUTOR_CONFIG", str(path))
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:pw@db/x")
    monkeypatch.setenv("SECRET_KEY", "s3cr3t-signing-key")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:ABCDEF-token")
    monkeypatch.setenv("SMTP_URL", "smtp://mailer:smtp-pass@mail:587")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://news.example/")
    s = load_settings()
    assert s.site.name == "Other Site"
    assert s.database_url == "postgresql://u:pw@db/x"
    assert s.secret_key == "s3cr3t-signing-key" and not s.secret_key_is_demo
    assert s.public_base_url == "https://news.example"
    assert sorted(s.secrets()) == sorted(["s3cr3t-signing-key", "123456:ABCDEF-token", "smtp-pass", "pw"])
    # Secrets never show in reprs (pydantic SecretStr).
    assert "s3cr3t" not in repr(s.env) and "ABCDEF" not in repr(s.env) and "smtp-pass" not in repr(s.env)


def test_defaults_with_nothing_set(settings):
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith("distributor.db")
    assert settings.redis_url is None and settings.secret_key_is_demo


def test_the_old_claim_timeouts_still_load_with_a_deprecation_warning(tmp_path, caplog):
    """Claims are leases now (issue 10): [delivery] lease_seconds replaces them."""
    text = SHIPPED.replace("[email]\n", "[email]\nclaim_timeout_seconds = 900\n", 1).replace(
        "[telegram]\n", "[telegram]\nstale_claim_seconds = 900\n", 1
    )
    with caplog.at_level("WARNING", logger="distributor.settings"):
        settings = load_settings(write(tmp_path, text))
    assert settings.file.delivery.lease_seconds == 30
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "email.claim_timeout_seconds is deprecated" in warned and "telegram.stale_claim_seconds is deprecated" in warned
    assert "lease_seconds" in warned
