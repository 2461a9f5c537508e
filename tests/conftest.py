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

import pytest
from sqlalchemy import create_engine, text

from distributor.settings import PROJECT_ROOT, PathsConfig, Settings, load_settings
from distributor.store import Store

pytest_plugins = ["tests.fakes.telegram_api", "tests.fakes.smtp_server"]

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CONFIG = PROJECT_ROOT / "config" / "distributor.toml"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
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


@pytest.fixture
def postgres_store() -> Store:
    problem = postgres_problem()
    if problem:
        message = f"PostgreSQL NOT AVAILABLE at {POSTGRES_URL} ({problem}): PostgreSQL store tests NOT RUN"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(Store(POSTGRES_URL).url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    store = Store(f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}")
    store.migrate()
    yield store
    store.dispose()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Store:
    """The same test once per database backend."""
    return request.getfixturevalue(f"{request.param}_store")
