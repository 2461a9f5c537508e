"""Shared fixtures: settings on a temporary var dir, and stores on SQLite and PostgreSQL.

PostgreSQL comes from TEST_POSTGRES_URL (default: the local trust-auth server, database
`test`). Each test gets its own schema, dropped afterwards. When the server cannot be
reached the PostgreSQL half of the store tests is skipped with a loud reason, unless
DISTRIBUTOR_REQUIRE_SERVICES=1 (set by .ci/run once it has the servers up), which turns
the skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable, NoReturn

import pytest
from sqlalchemy import create_engine, text

from distributor.settings import PROJECT_ROOT, PathsConfig, Settings, load_settings
from distributor.store import Store

pytest_plugins = ["tests.fakes.telegram_api", "tests.fakes.mastodon_api", "tests.fakes.bluesky_api", "tests.fakes.smtp_server"]

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CONFIG = PROJECT_ROOT / "config" / "distributor.toml"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_SERVICES = os.environ.get("DISTRIBUTOR_REQUIRE_SERVICES") == "1"

ENV_KEYS = (
    "DISTRIBUTOR_CONFIG",
    "DATABASE_URL",
    "REDIS_URL",
    "SMTP_URL",
    "MAIL_FROM",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_API_BASE_URL",
    "SECRET_KEY",
    "PUBLIC_BASE_URL",
    "OPERATOR_TOKEN",
    "MAILGUN_WEBHOOK_SIGNING_KEY",
    "POSTMARK_WEBHOOK_AUTH",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the operator's environment; they set what they need."""
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)


def settings_for(tmp_path: Path, config: Path = CONFIG, **file_updates) -> Settings:
    """Settings from a config file with var_dir moved under tmp_path.

    `file_updates` replace whole top-level tables, e.g. ingest=IngestConfig(...).
    """
    settings = load_settings(config)
    updates = {"paths": PathsConfig(var_dir=str(tmp_path / "var")), **file_updates}
    return Settings(settings.file.model_copy(update=updates), settings.env, settings.config_path)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for(tmp_path)


def _postgres_reachable() -> str | None:
    try:
        engine = create_engine(Store(POSTGRES_URL).url)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


_PG_PROBLEM: list[str | None] = []


def postgres_problem() -> str | None:
    if not _PG_PROBLEM:
        _PG_PROBLEM.append(_postgres_reachable())
    return _PG_PROBLEM[0]


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'var' / 'distributor.db'}")
    store.migrate()
    yield store
    store.dispose()


def unavailable(service: str, where: str, problem: str, what: str) -> NoReturn:
    """Skip loudly because a server cannot be reached, or fail under REQUIRE_SERVICES."""
    message = f"{service} NOT AVAILABLE at {where} ({problem}): {what} NOT RUN"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


def redis_or_skip(what: str):  # noqa: ANN201 - a redis.Redis
    """A client of the test Redis (TEST_REDIS_URL), or a loud skip naming `what`."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        unavailable("Redis", REDIS_URL, f"{type(exc).__name__}: {exc}", what)
    return client


def postgres_schema(what: str) -> tuple[str, Callable[[], None]]:
    """A database URL on a new PostgreSQL schema of its own, and how to drop it."""
    problem = postgres_problem()
    if problem:
        unavailable("PostgreSQL", POSTGRES_URL, problem, what)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(Store(POSTGRES_URL).url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    sep = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}", drop


@pytest.fixture
def postgres_store() -> Store:
    url, drop = postgres_schema("PostgreSQL store tests")
    store = Store(url)
    store.migrate()
    yield store
    store.dispose()
    drop()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Store:
    """The same test once per database backend."""
    return request.getfixturevalue(f"{request.param}_store")
