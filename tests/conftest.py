"""Shared fixtures: settings on a temporary var dir, and stores on SQLite and PostgreSQL.

PostgreSQL comes from TEST_POSTGRES_URL (default: the local trust-auth server, database
`test`). Each test process migrates one schema of its own and empties it for each test
(PostgresSchemaPool); postgres_schema() makes a new empty one. When the server cannot be
reached the PostgreSQL half of the store tests is skipped with a loud reason, unless
DISTRIBUTOR_REQUIRE_SERVICES=1 (set by .ci/run once it has the servers up), which turns
the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Callable, NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import create_engine, text

from distributor.settings import PROJECT_ROOT, PathsConfig, Settings, load_settings
from distributor.store import Store

pytest_plugins = ["tests.fakes.telegram_api", "tests.fakes.mastodon_api", "tests.fakes.bluesky_api", "tests.fakes.smtp_server"]

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CONFIG = PROJECT_ROOT / "config" / "distributor.toml"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def worker_redis_url(url: str, worker: str | None) -> str:
    """The Redis database of this test process: TEST_REDIS_URL's own when the suite runs
    in one process; under pytest-xdist (`make test`), worker gwN takes the index N below
    it (15, 14, 13, ... wrapping at 0), so tests that count or delete keys by pattern
    never meet another worker's keys."""
    if not worker:
        return url
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    index = (base - int(worker.removeprefix("gw"))) % 16
    return urlunsplit(parts._replace(path=f"/{index}"))


REDIS_URL = worker_redis_url(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"), os.environ.get("PYTEST_XDIST_WORKER"))
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


# --- running in parallel (`make test`: pytest-xdist, -n 4 --dist loadgroup) ----------------

# The tests that start real worker and beat processes (marked `processes`, in files named
# *_processes.py) wait on deadlines sized for a loaded two-core machine, some of them
# bounds an issue set (a SIGKILLed worker's 3,000-message run recovered within 90 s; the
# broker-loss run within two minutes on the shipped 30 s tick). Four of them at once
# would starve each other's processes, one after another would make them the whole run's
# tail, so they run in two lanes, each lane one file after another on one worker; the
# two files with the tightest bounds share a lane and never overlap.
PROCESS_LANES = {
    "test_lease_processes.py": "processes-b",
    "test_broker_loss_processes.py": "processes-b",
}
DEFAULT_PROCESS_LANE = "processes-a"


def process_lane(nodeid: str) -> str | None:
    """The lane of a test that starts real processes, from its file's name; None for others."""
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    if not module.endswith("_processes.py"):
        return None
    return PROCESS_LANES.get(module, DEFAULT_PROCESS_LANE)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):  # noqa: ANN001, ANN201 - xdist's types
    """--dist loadgroup with the lanes above as groups, every other test on its own.

    xdist 3.8 passes `xdist_group` marks to its scheduler as a suffix it writes into node
    ids, which pytest 9.2 no longer lets it change (pytest-xdist issue 1386: the marks are
    silently ignored); so the groups come from file names here.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ProcessLanes(LoadScopeScheduling):
        # Scopes with more tests are handed out first (xdist's --loadscope-reorder,
        # on by default): the two lanes start at once instead of ending the run.
        def _split_scope(self, nodeid: str) -> str:
            return process_lane(nodeid) or nodeid

    return ProcessLanes(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The lanes go by file name: keep the marker and the name in step."""
    for item in items:
        marked = item.get_closest_marker("processes") is not None
        if marked != (process_lane(item.nodeid) is not None):
            raise pytest.UsageError(
                f"{item.nodeid}: tests marked `processes` live in files named *_processes.py, and only they "
                "(tests/conftest.py PROCESS_LANES keeps them off each other under `make test`)"
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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per test process, for sqlite_store to copy.

    Running the migration chain costs ~0.3 s a test; copying its result, a few ms. The
    chain itself stays tested from empty (tests/integration/test_store.py).
    """
    path = tmp_path_factory.mktemp("sqlite-template") / "distributor.db"
    store = Store(f"sqlite:///{path}")
    store.migrate()
    store.dispose()
    # Closing the last connection checkpoints WAL mode's log into the file; a log left
    # behind would hold part of the schema, and a copy of the file alone would lack it.
    assert not path.with_name(path.name + "-wal").exists(), "SQLite template kept a WAL file"
    return path


@pytest.fixture
def sqlite_store(tmp_path: Path, sqlite_template: Path) -> Store:
    """A SQLite database at head of its own, at var/distributor.db under tmp_path."""
    path = tmp_path / "var" / "distributor.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sqlite_template, path)
    store = Store(f"sqlite:///{path}")
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
        try:
            with admin.begin() as conn:
                # A connection a test left holding a lock makes this fail, not hang the run.
                conn.execute(text("SET LOCAL lock_timeout = '30s'"))
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        finally:
            admin.dispose()

    sep = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}", drop


# What a schema is made of, as one digest: relations, columns (type, null, default),
# constraints, indexes, and the alembic revision. A test that changed any of it leaves
# a schema the next test must not be handed.
_SCHEMA_SHAPE = text(
    """
    SELECT md5(string_agg(item, ' | ' ORDER BY item)) FROM (
        SELECT concat_ws(':', c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod),
                         a.attnotnull, pg_get_expr(d.adbin, d.adrelid)) AS item
        FROM pg_class c
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
        WHERE c.relnamespace = CAST(:schema AS regnamespace)
        UNION ALL
        SELECT concat_ws(':', conrelid::regclass::text, conname, pg_get_constraintdef(oid))
        FROM pg_constraint WHERE connamespace = CAST(:schema AS regnamespace)
        UNION ALL
        SELECT pg_get_indexdef(indexrelid) FROM pg_index
        WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = CAST(:schema AS regnamespace))
        UNION ALL
        SELECT 'alembic:' || version_num FROM alembic_version
    ) AS shape
    """
)


class PostgresSchemaPool:
    """One PostgreSQL schema per test process, migrated once and emptied for each test.

    Migrating a new schema per test cost ~0.4 s (17 revisions through alembic), a third of
    the suite's PostgreSQL time. Emptying one is a single round trip: DELETE from every
    table, child tables first, and every sequence restarted, so ids start at 1 as in a new
    schema. A schema a test changed (its shape digest differs) or that cannot be emptied
    within `lock_timeout` (a test left a transaction open) is abandoned for a newly
    migrated one. Tests that need a schema from empty use postgres_schema().
    """

    lock_timeout = "5s"

    def __init__(self) -> None:
        self.url: str | None = None
        self.schema = ""
        self.shape = ""
        self.reset_sql = ""
        self.checkouts = 0
        self.drops: list[Callable[[], None]] = []

    def checkout(self) -> str:
        """The URL of a schema at head with no rows, for one test.

        Each URL is new to the process (its application_name counts checkouts), as a new
        schema's was: caches keyed by the store's URL, like the sender's run issues and
        progress stamps, must not hand one test's run 1 to the next test's run 1.
        """
        if self.url is None or not self._reset():
            self._build()
        self.checkouts += 1
        return f"{self.url}&application_name={self.schema}-{self.checkouts}"

    def _build(self) -> None:
        from sqlalchemy import MetaData

        url, drop = postgres_schema("PostgreSQL store tests")
        self.drops.append(drop)
        self.schema = url.rsplit("search_path%3D", 1)[1]
        store = Store(url)
        try:
            store.migrate()
            tables = MetaData()
            tables.reflect(store.engine)
            with store.engine.connect() as conn:
                sequences = conn.execute(
                    text("SELECT sequencename FROM pg_sequences WHERE schemaname = :schema ORDER BY 1"),
                    {"schema": self.schema},
                ).scalars().all()
                self.shape = conn.execute(_SCHEMA_SHAPE, {"schema": self.schema}).scalar_one()
        finally:
            store.dispose()
        statements = [
            f'DELETE FROM "{self.schema}"."{table.name}"'
            for table in reversed(tables.sorted_tables)
            if table.name != "alembic_version"
        ]
        statements += [f'ALTER SEQUENCE "{self.schema}"."{name}" RESTART' for name in sequences]
        self.reset_sql = ";\n".join(statements)
        self.url = url

    def _reset(self) -> bool:
        """Empty the schema; False when it must be abandoned instead."""
        from sqlalchemy.exc import DBAPIError

        engine = create_engine(Store(self.url).url)
        try:
            with engine.begin() as conn:
                # Before the shape query too: pg_get_expr waits for a lock on its table.
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{self.lock_timeout}'")
                if conn.execute(_SCHEMA_SHAPE, {"schema": self.schema}).scalar_one() != self.shape:
                    return False
                conn.exec_driver_sql(self.reset_sql)
            return True
        except DBAPIError:
            return False
        finally:
            engine.dispose()

    def close(self) -> None:
        for drop in self.drops:
            try:
                drop()
            except Exception as exc:  # noqa: BLE001 - a schema left behind is not a test failure
                print(f"\nPostgreSQL test schema not dropped: {type(exc).__name__}: {exc}".splitlines()[0])


@pytest.fixture(scope="session")
def postgres_schema_pool() -> PostgresSchemaPool:
    pool = PostgresSchemaPool()
    yield pool
    pool.close()


@pytest.fixture
def postgres_store(postgres_schema_pool: PostgresSchemaPool) -> Store:
    """A PostgreSQL schema at head with no rows (see PostgresSchemaPool)."""
    store = Store(postgres_schema_pool.checkout())
    yield store
    store.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Store:
    """The same test once per database backend."""
    return request.getfixturevalue(f"{request.param}_store")
