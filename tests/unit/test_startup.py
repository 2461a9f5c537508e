"""The start-up rule (distributor.startup): what the demo is, which secrets and public
addresses a process outside it refuses. Every entry point asks these functions."""

from __future__ import annotations

import pytest

from distributor.settings import DEMO_SECRET, Settings, WebConfig
from distributor.startup import (
    demo_breakers,
    is_demo,
    is_public_host,
    refusal,
    secret_problem,
    startup_problems,
)
from tests.conftest import settings_for

GOOD_KEY = "9f2c1b7e5a3d4c6b8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d"
GOOD_URL = "https://news.newsarenaindia.com"


@pytest.fixture
def make(tmp_path, monkeypatch):
    """Settings from an environment: make(SMTP_URL=..., SECRET_KEY=...)."""

    def build(insecure: bool = False, **env: str) -> Settings:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        updates = {"web": WebConfig(allow_insecure_public_url=True)} if insecure else {}
        return settings_for(tmp_path, **updates)

    return build


# (environment, address the process serves the web app on, is it the demo?)
DEMO_TABLE = [
    ({}, None, True),
    ({}, "127.0.0.1", True),
    ({}, "::1", True),
    ({}, "localhost", True),
    ({"PUBLIC_BASE_URL": "http://127.0.0.1:8000"}, "127.0.0.1", True),
    ({"REDIS_URL": "redis://127.0.0.1:6379/0"}, None, True),  # the broker sends nothing out
    ({"DATABASE_URL": "postgresql://u@127.0.0.1/x"}, None, True),
    ({}, "0.0.0.0", False),
    ({}, "::", False),
    ({}, "192.168.1.20", False),
    ({"SMTP_URL": "smtp://127.0.0.1:1025"}, None, False),  # a local catcher is still real SMTP
    ({"TELEGRAM_BOT_TOKEN": "123:abc"}, None, False),
    ({"PUBLIC_BASE_URL": GOOD_URL}, None, False),
    ({"SMTP_URL": "smtp://mail:25", "TELEGRAM_BOT_TOKEN": "123:abc"}, "0.0.0.0", False),
]


@pytest.mark.parametrize("env, web_host, expected", DEMO_TABLE)
def test_what_counts_as_the_zero_configuration_demo(make, env, web_host, expected):
    settings = make(**env)
    assert is_demo(settings, web_host=web_host) is expected
    assert (demo_breakers(settings, web_host=web_host) == []) is expected


# (SECRET_KEY or None for unset, the problem's distinctive words or None)
SECRET_TABLE = [
    (None, "is not set"),
    (DEMO_SECRET, "public demo key"),
    ("replace-with-64-hex-characters", "placeholder"),
    ("REPLACE-WITH-64-HEX-CHARACTERS", "placeholder"),
    ("replace-with-another-64-hex-characters", "placeholder"),
    ("changeme", "placeholder"),
    ("engine-process-tests", "20 bytes, shorter than 32"),
    ("x" * 31, "31 bytes, shorter than 32"),
    ("é" * 16, None),  # 32 bytes in UTF-8
    ("x" * 32, None),
    (GOOD_KEY, None),
]


@pytest.mark.parametrize("value, problem", SECRET_TABLE)
def test_secret_rules(value, problem):
    found = secret_problem("SECRET_KEY", value)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith("SECRET_KEY ") and problem in found
        assert 'python3 -c "import secrets; print(secrets.token_hex(32))"' in found
        if value:
            assert value not in found, "the refused value itself is never printed"


@pytest.mark.parametrize(
    "host, public",
    [
        ("www.newsarenaindia.com", True),
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("localhost", False),
        ("app.localhost", False),
        ("127.0.0.1", False),
        ("::1", False),
        ("10.0.0.5", False),
        ("172.16.3.4", False),
        ("192.168.1.20", False),
        ("169.254.1.1", False),
        ("100.64.0.1", False),
        ("fd00::1", False),
        ("0.0.0.0", False),
        ("web", False),
        ("news.internal", False),
        ("printer.local", False),
        ("example.com", False),
        ("news.example.com", False),
        ("site.test", False),
        ("", False),
    ],
)
def test_public_hosts(host, public):
    assert is_public_host(host) is public


# (PUBLIC_BASE_URL or None, allow_insecure_public_url, the problem's words or None)
URL_TABLE = [
    (None, False, "PUBLIC_BASE_URL is not set"),
    (None, True, "PUBLIC_BASE_URL is not set"),  # staging must still say where it is
    ("http://127.0.0.1:8000", False, "loopback, private or reserved"),
    ("http://localhost:8000", False, "loopback, private or reserved"),
    ("https://10.1.2.3", False, "loopback, private or reserved"),
    ("https://news.example.com", False, "loopback, private or reserved"),
    ("http://news.newsarenaindia.com", False, "not https"),
    ("ftp://news.newsarenaindia.com", False, "not an http(s) URL"),
    ("news.newsarenaindia.com", True, "not an http(s) URL"),
    ("http://[::1", False, "not an http(s) URL"),
    (GOOD_URL, False, None),
    (GOOD_URL + "/", False, None),
    ("http://news.newsarenaindia.com", True, None),
    ("http://192.168.1.20:8000", True, None),
]


@pytest.mark.parametrize("url, insecure, problem", URL_TABLE)
def test_public_url_rules_for_real_mail(make, url, insecure, problem):
    env = {"SMTP_URL": "smtp://mail.newsarenaindia.com:587", "SECRET_KEY": GOOD_KEY}
    if url is not None:
        env["PUBLIC_BASE_URL"] = url
    problems = startup_problems(make(insecure=insecure, **env))
    if problem is None:
        assert problems == []
    else:
        [found] = problems
        assert found.startswith("PUBLIC_BASE_URL ") and problem in found


def test_public_url_does_not_matter_without_real_sending(make):
    # A web app on 0.0.0.0 whose mail goes to the outbox: no reader gets a dead link.
    settings = make(SECRET_KEY=GOOD_KEY)
    assert startup_problems(settings, web_host="0.0.0.0") == []


def test_operator_token_is_checked_when_set(make):
    settings = make(SECRET_KEY=GOOD_KEY, OPERATOR_TOKEN="replace-with-another-64-hex-characters", PUBLIC_BASE_URL=GOOD_URL)
    [found] = startup_problems(settings)
    assert found.startswith("OPERATOR_TOKEN ") and "placeholder" in found


def test_the_demo_needs_nothing_and_production_needs_everything(make):
    assert startup_problems(make()) == []
    assert refusal("distributor worker", make()) is None
    settings = make(SMTP_URL="smtp://mail.newsarenaindia.com:587", TELEGRAM_BOT_TOKEN="123:abc")
    message = refusal("distributor worker", settings)
    assert message.splitlines()[0] == (
        "distributor worker refuses to start: this is not the local demo (SMTP_URL is set; TELEGRAM_BOT_TOKEN is set)"
    )
    assert [line.split()[0] for line in message.splitlines()[1:]] == ["SECRET_KEY", "PUBLIC_BASE_URL"]
    assert "123:abc" not in message
