"""The engine as operators run it: real `distributor worker` and `distributor beat`
processes on a private redis-server, mail counted at a real SMTP server, posts at the
fake Bot API.

Each test starts its own redis-server on a free port (never the shared one), a SQLite
database file, and the processes it needs; they are killed when the test ends. The test
config shortens the reliability timings (lease, Redis visibility timeout, retry
backoff, scheduler tick and stale-run check) so recovery takes seconds, not the
production minutes; the mechanisms are the production ones.

Deadlines in `wait` are "it happened at all" limits for a loaded machine, never
performance assertions. Select these tests with `-m processes` (or skip them with
`-m "not processes"`).
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from distributor import engine, schedules
from distributor.articles import Article
from distributor.settings import load_settings
from distributor.store import Store
from distributor.store.articles import save_articles
from distributor.store.models import (
    DeliveryRow,
    EditionRunRow,
    SubscriberRow,
    TelegramPostRow,
)
from tests.conftest import postgres_schema
from tests.fakes.processes import Processes, RedisServer, process_env, wait_for
from tests.fakes.smtp_server import FakeSmtpServer

pytestmark = pytest.mark.processes

UTC = timezone.utc
SITE_TZ = ZoneInfo("Asia/Kolkata")
# Generous: a loaded two-core machine starting Python processes is slow, not stuck.
DEADLINE = 120.0
# SMTP client timeout (seconds) in the test processes.
SMTP_TIMEOUT = 8

# The reliability timings, shortened; how they must relate is what production relies on:
# - lease (5 s): a live sender renews it every 5/3 s whatever its SMTP server does, so
#   it is never taken over; a killed one's rows are free 5 s after its last renewal;
# - visibility timeout (20 s) > lease: a task redelivered after its worker was killed
#   finds that worker's leases expired and takes them over at once;
# - visibility timeout > Celery's longest retry countdown (5 s), which the settings check.
CONFIG = """
[site]
timezone = "Asia/Kolkata"
fallback_section = "nation"

[[sections]]
slug = "nation"
label = "Nation"
aliases = ["India"]

[[sections]]
slug = "sports"
label = "Sports"
aliases = ["Cricket"]

[[sections]]
slug = "economy"
label = "Economy"
aliases = ["Business"]

{editions}
{channels}
[email]
from_address = "News Arena <brief@newsarenaindia.com>"
retry_first_seconds = 1
retry_max_seconds = 2

[delivery]
lease_seconds = 5

[scheduler]
tick_seconds = 5
grace_minutes = 120
stale_after_seconds = 5

[celery]
retry_backoff_max_seconds = 5
visibility_timeout_seconds = 20

[demo]
subscribers = ""
"""

# Paused in the config: only `schedule run-now` (or a test's own tick) opens its runs,
# so a test running at 07:00 IST never meets the real schedule.
MORNING_RUN_NOW_ONLY = """
[editions.morning]
label = "Morning Brief"
schedule = "0 7 * * *"
window = 24
min_articles = 3
default = true
paused = true
"""

MAIN_CHANNEL = """
[channels.main]
chat_id = "@newsarena"
digests = ["morning"]
"""


@dataclass
class World:
    """One test's servers, database and processes."""

    root: Path
    store: Store
    redis: RedisServer
    smtp: FakeSmtpServer
    env: dict[str, str]
    processes: list[Processes] = field(default_factory=list)

    # --- processes ---------------------------------------------------------------------

    def procs(self, name: str = "main") -> Processes:
        """A process group with its own working directory (so its own var/ and beat schedule file)."""
        workdir = self.root / name
        workdir.mkdir(exist_ok=True)
        group = Processes(self.env, workdir)
        self.processes.append(group)
        return group

    def cli(self, *args: str) -> str:
        """Run `distributor ARGS` as an operator would; its output."""
        done = subprocess.run(
            [sys.executable, "-m", "distributor", *args],
            cwd=self.root / "main",
            env=self.env,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
        )
        assert done.returncode == 0, f"distributor {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def output(self) -> str:
        return "\n".join(group.output() for group in self.processes)

    def stop(self) -> None:
        for group in self.processes:
            group.stop_all()
            for process in group.started:
                if process.poll() is None:
                    Processes.kill(process)

    # --- what the database says ----------------------------------------------------------

    def ledger(self, run_id: int | None = None) -> Counter:
        """Deliveries by status (of one run, or all)."""
        query = select(DeliveryRow.status, func.count()).group_by(DeliveryRow.status)
        if run_id is not None:
            query = query.where(DeliveryRow.run_id == run_id)
        with self.store.session() as session:
            return Counter(dict(session.execute(query).all()))

    def runs(self) -> list[EditionRunRow]:
        with self.store.session() as session:
            return list(session.scalars(select(EditionRunRow).order_by(EditionRunRow.id)))

    def posts(self) -> list[TelegramPostRow]:
        with self.store.session() as session:
            return list(session.scalars(select(TelegramPostRow).order_by(TelegramPostRow.id)))

    def describe(self) -> str:
        """What a failure message needs: the ledger, runs, the servers' counts, process logs."""
        runs = [(r.id, r.edition, r.slot.isoformat(), r.timezone, r.attempt, r.status, r.note) for r in self.runs()]
        posts = [(p.channel, p.run_id, p.status, p.message_ids) for p in self.posts()]
        return (
            f"ledger: {dict(self.ledger())}\nruns: {runs}\nposts: {posts}\n"
            f"smtp: {len(self.smtp.messages)} accepted, {self.smtp.held} held\n{self.output()}"
        )

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
        """wait_for, failing with the state of everything."""
        try:
            wait_for(predicate, timeout=timeout, what=what, interval=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.describe()}") from None

    # --- checks ------------------------------------------------------------------------

    def assert_each_got(self, emails: list[str], times: int) -> None:
        """Every subscriber has exactly `times` messages at the SMTP server, and no one else any."""
        counts = Counter(r.lower() for r in self.smtp.recipients())
        wrong = {e: counts.get(e, 0) for e in emails if counts.get(e, 0) != times}
        strangers = sorted(set(counts) - set(emails))
        assert not wrong and not strangers, (
            f"expected {times} message(s) each; wrong counts (first 10): {dict(list(wrong.items())[:10])} "
            f"({len(wrong)} subscribers), strangers: {strangers[:10]}\n{self.describe()}"
        )


def write_config(path: Path, editions: str, channels: str = "") -> Path:
    path.write_text(CONFIG.format(editions=editions, channels=channels))
    return path


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    """make_world(editions=..., channels=..., telegram=fake, database="sqlite"|"postgres")
    -> World; processes, servers and any PostgreSQL schema are gone after the test."""
    made: list[World] = []
    servers: list[object] = []
    cleanups: list[Callable[[], None]] = []

    def make(editions: str = MORNING_RUN_NOW_ONLY, channels: str = "", telegram=None, database: str = "sqlite") -> World:
        if database == "postgres":
            database, drop = postgres_schema("engine process test on PostgreSQL")
            cleanups.append(drop)
        else:
            database = f"sqlite:///{tmp_path / 'distributor.db'}"
        config = write_config(tmp_path / "distributor.toml", editions, channels)
        redis = RedisServer(tmp_path / "redis").start()
        servers.append(redis)
        smtp = FakeSmtpServer(pipelining=True).start()
        servers.append(smtp)
        env = process_env(
            DISTRIBUTOR_CONFIG=str(config),
            DATABASE_URL=database,
            REDIS_URL=redis.url,
            SMTP_URL=f"{smtp.url}?timeout={SMTP_TIMEOUT}&helo=test",
            SECRET_KEY="engine-process-tests-signing-key-0123456789abcdef",
            PUBLIC_BASE_URL="https://www.newsarenaindia.com",
        )
        if telegram is not None:
            env.update(TELEGRAM_BOT_TOKEN=telegram.token, TELEGRAM_API_BASE_URL=telegram.base_url)
        store = Store(database)
        store.migrate()
        world = World(tmp_path, store, redis, smtp, env)
        (tmp_path / "main").mkdir(exist_ok=True)
        made.append(world)
        return world

    try:
        yield make
    finally:
        for world in made:
            world.stop()
            world.store.dispose()
        for server in reversed(servers):
            server.stop()
        for cleanup in cleanups:
            cleanup()


# --- data ----------------------------------------------------------------------------


def add_subscribers(store: Store, count: int, zones: tuple[str, ...] = ("Asia/Kolkata",)) -> list[str]:
    """`count` confirmed subscribers (default preferences), spread over `zones`; their addresses."""
    now = datetime.now(UTC)
    emails = [f"reader{i:04d}@example.com" for i in range(count)]
    with store.session() as session:
        session.execute(
            SubscriberRow.__table__.insert(),
            [
                {
                    "email": email,
                    "status": "confirmed",
                    "timezone": zones[i % len(zones)],
                    "format": "html",
                    "name": f"Reader {i}",
                    "created_at": now,
                    "confirmed_at": now,
                    "status_changed_at": now,
                    "source": "import",
                }
                for i, email in enumerate(emails)
            ],
        )
    return emails


def add_articles(store: Store, newest: datetime, count: int = 6) -> None:
    """`count` articles across three sections, an hour apart, the newest at `newest`."""
    sections = ("nation", "sports", "economy")
    save_articles(
        store,
        [
            Article(
                key=f"story-{newest:%Y%m%d%H%M}-{i}",
                url=f"https://www.newsarenaindia.com/{sections[i % 3]}/story-{newest:%Y%m%d%H%M}-{i}",
                title=f"Story {i} of {newest:%d %b %H:%M}",
                section=sections[i % 3],
                published_at=newest - timedelta(hours=i),
                standfirst="What happened, and why it matters.",
                trending=i == 0,
            )
            for i in range(count)
        ],
    )


def only_run(world: World) -> EditionRunRow:
    runs = world.runs()
    assert len(runs) == 1, world.describe()
    return runs[0]


def settled(world: World, run_id: int, total: int) -> bool:
    """Every delivery of the run is sent and the engine has closed the run."""
    return world.ledger(run_id).get("sent", 0) == total and any(r.id == run_id and r.status == "sent" for r in world.runs())


# --- the scenarios ---------------------------------------------------------------------


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_a_worker_killed_mid_fan_out_is_recovered_and_every_subscriber_gets_one_message(make_world, database):
    """SIGKILL to the whole worker (main process and pool) while it sends; a new worker
    takes over when Redis gives the unacknowledged batch to it (visibility timeout): the
    dead worker's leases have expired by then. No beat runs: the redelivery alone recovers.
    Once on SQLite, once on PostgreSQL (where claims race with real row locks).

    The SMTP server holds its reply to every DATA after the first 100 messages, so the
    kill lands at a known point: 100 messages accepted (and, since each result is
    recorded as it comes, in the ledger), the next ones on the wire without an answer,
    which a real MTA does not deliver when the connection dies.
    """
    world = make_world(database=database)
    add_articles(world.store, datetime.now(UTC) - timedelta(minutes=30))
    emails = add_subscribers(world.store, 300)
    procs = world.procs()
    first = procs.worker()

    world.smtp.hold_after(100)
    world.cli("schedule", "run-now", "morning")
    world.wait(lambda: len(world.runs()) == 1, "the run-now run to open")
    run = only_run(world)
    world.wait(lambda: world.ledger(run.id).get("sent", 0) == 100 and world.smtp.held > 0, "100 sent and recorded, the rest held")
    assert world.ledger(run.id)["sending"] == 200, world.describe()  # claimed by the worker about to die

    Processes.kill(first)  # SIGKILL to its process group
    # The server notices the dead connections (their held messages are never accepted)
    # before it stops holding.
    world.wait(lambda: world.smtp.held == 0, "the server to see the killed worker's connections close")
    world.smtp.release()
    assert len(world.smtp.messages) == 100, world.describe()

    procs.worker()
    world.wait(lambda: settled(world, run.id, 300), "the new worker to send the rest")
    world.assert_each_got(emails, 1)
    assert world.ledger(run.id) == Counter(sent=300), world.describe()


def test_redis_restarted_mid_run_loses_nothing_and_duplicates_nothing(make_world, fake_telegram):
    """Redis restarts (persistence off: every queued task is gone) while a run's email
    is half sent and its Telegram digest is still queued. The workers reconnect; the
    beat's tick finds the run's work stalled and queues it again; claims in the database
    keep anything from going twice.

    The Telegram queue's worker starts only after the restart, so the digest task is
    certainly among what Redis lost (as when that worker is busy or down).
    """
    world = make_world(channels=MAIN_CHANNEL, telegram=fake_telegram)
    add_articles(world.store, datetime.now(UTC) - timedelta(minutes=30))
    emails = add_subscribers(world.store, 300)
    procs = world.procs()
    procs.beat()
    procs.worker("--queues", "editions,email")

    world.smtp.hold_after(120)
    world.cli("schedule", "run-now", "morning")
    world.wait(lambda: len(world.runs()) == 1, "the run-now run to open")
    run = only_run(world)
    world.wait(lambda: world.ledger(run.id).get("sent", 0) == 120 and world.smtp.held > 0, "120 sent, the rest held")
    assert fake_telegram.delivered == [], world.describe()

    world.redis.restart()  # same port, empty
    world.smtp.release()
    telegram_worker = world.procs("telegram")
    telegram_worker.worker("--queues", "telegram")

    world.wait(lambda: settled(world, run.id, 300), "every delivery sent and the run closed")
    world.assert_each_got(emails, 1)
    [post] = world.posts()
    assert post.status == "sent" and post.message_ids, world.describe()
    delivered = fake_telegram.delivered
    texts = [c.params.get("text") or c.params.get("caption") for c in delivered]
    # Each part of the digest exactly once, and nothing else.
    assert len(delivered) == len(post.message_ids) == len(set(texts)), world.describe()
    assert {c.chat_id for c in delivered} == {"@newsarena"}

    # The processes that lived through the restart still take new work.
    world.cli("schedule", "run-now", "morning", "--force")
    world.wait(lambda: len(world.runs()) == 2, "a second run after the restart")
    second = world.runs()[-1]
    world.wait(lambda: settled(world, second.id, 300), "the second run sent")
    world.assert_each_got(emails, 2)


def test_deliveries_deferred_while_the_smtp_server_is_down_all_go_once_it_returns(make_world):
    """The SMTP server goes away mid-run (connections cut, then refused): every unsent
    delivery is deferred and retried with backoff by the beat's retry pass; when the
    server is back they all go, each once."""
    world = make_world()
    add_articles(world.store, datetime.now(UTC) - timedelta(minutes=30))
    emails = add_subscribers(world.store, 150)
    procs = world.procs()
    procs.beat()
    procs.worker()

    world.smtp.hold_after(50)
    world.cli("schedule", "run-now", "morning")
    world.wait(lambda: len(world.runs()) == 1, "the run-now run to open")
    run = only_run(world)
    world.wait(lambda: world.ledger(run.id).get("sent", 0) == 50 and world.smtp.held > 0, "50 sent, the rest held")

    world.smtp.stop()  # cuts the held connections; new ones are refused
    world.smtp.release()
    world.wait(lambda: world.ledger(run.id) == Counter(sent=50, deferred=100), "the unsent deliveries deferred")

    def retried_while_down() -> bool:
        with world.store.session() as session:
            tries = session.scalar(select(func.min(DeliveryRow.attempts)).where(DeliveryRow.status == "deferred"))
        return tries is not None and tries >= 2

    world.wait(retried_while_down, "a retry pass to find the server still down")
    assert len(world.smtp.messages) == 50, world.describe()

    world.smtp.start()  # same port
    world.wait(lambda: settled(world, run.id, 150), "the deferred deliveries sent")
    world.assert_each_got(emails, 1)
    with world.store.session() as session:
        retried = session.scalar(select(func.count()).where(DeliveryRow.attempts >= 3))
    assert retried == 100, world.describe()  # first try, at least one refused retry, then sent


def next_minute_slot(now: datetime, margin: timedelta = timedelta(seconds=15)) -> datetime:
    """The first whole minute at least `margin` away (time for the CLI calls before it)."""
    earliest = now + margin
    slot = earliest.replace(second=0, microsecond=0)
    return slot if slot >= earliest else slot + timedelta(minutes=1)


def ticks_sent(beat: Processes, after: datetime) -> int:
    """Scheduler ticks this beat process sent after `after` (from its log)."""
    count = 0
    lines = [line for log in beat.logs if log.exists() for line in log.read_text(errors="replace").splitlines()]
    for line in lines:
        if "Sending due task scheduler-tick" in line:
            stamp = datetime.strptime(line.split(" ", 1)[0], "%Y-%m-%dT%H:%M:%S%z")
            count += stamp > after
    return count


def test_schedule_changes_reach_running_processes_and_two_beats_open_one_run_per_slot(make_world):
    """A worker and two beat processes are running. An operator sets the evening
    edition to the coming minute and pauses it, and sets the morning edition to the same
    minute. Without any restart, the morning run for that minute opens once although
    both beats tick through it, and goes to each subscriber once; the paused evening
    edition does not run."""
    editions = """
[editions.morning]
label = "Morning Brief"
schedule = "0 7 * * *"
window = 24
min_articles = 3
default = true

[editions.evening]
label = "Evening Wrap"
schedule = "0 19 * * *"
window = 24
min_articles = 3
default = true
"""
    world = make_world(editions=editions)
    add_articles(world.store, datetime.now(UTC) - timedelta(minutes=30))
    emails = add_subscribers(world.store, 40)
    world.procs().worker()
    beats = [world.procs("beat-a"), world.procs("beat-b")]
    for beat in beats:
        beat.beat()
    started = datetime.now(UTC).replace(microsecond=0)
    world.wait(lambda: all(ticks_sent(beat, started - timedelta(seconds=1)) for beat in beats), "both beats to send a tick")

    slot = next_minute_slot(datetime.now(UTC))
    local = slot.astimezone(SITE_TZ)
    cron = f"{local.minute} {local.hour} * * *"
    # Evening first: its slot must not come before the pause does.
    world.cli("schedule", "set", "evening", cron)
    assert "paused" in world.cli("schedule", "pause", "evening")
    assert "takes effect" in world.cli("schedule", "set", "morning", cron)
    assert all(r.slot != slot for r in world.runs()), world.describe()

    # Both beats tick after the slot; the tick marker (shared, in the database) passes it.
    def both_ticked_past_slot() -> bool:
        marker = schedules.get_marker(world.store, engine.TICK_MARKER)
        return marker is not None and marker > slot and all(ticks_sent(beat, slot) >= 2 for beat in beats)

    world.wait(both_ticked_past_slot, f"both beats to tick past {slot:%H:%M} UTC", timeout=DEADLINE + 60)
    world.wait(lambda: any(r.edition == "morning" and r.slot == slot for r in world.runs()), "the morning run for the new slot")
    run = next(r for r in world.runs() if r.edition == "morning" and r.slot == slot)
    world.wait(lambda: settled(world, run.id, 40), "the morning run sent")

    at_slot = [(r.edition, r.attempt) for r in world.runs() if r.slot == slot]
    assert at_slot == [("morning", 0)], world.describe()  # one run; nothing for the paused evening
    world.assert_each_got(emails, 1)
    for beat in beats:
        assert all(p.poll() is None for p in beat.started), world.describe()


def test_subscriber_local_time_across_three_zones_at_the_london_dst_change(make_world, monkeypatch):
    """A local-time edition on the day London moves to summer time (30 March 2025).

    The scheduler's ticks (here in the test process, at fixed times every half hour
    across two days) open one run per subscriber zone at 07:00 local; a real worker
    builds and sends them. Each subscriber gets exactly one message per day, from the
    run of their own zone, and London's 07:00 moves from 07:00 UTC to 06:00 UTC.
    """
    editions = """
[editions.morning]
label = "Morning Brief"
schedule = "0 7 * * *"
window = 24
min_articles = 3
default = true
local_time = true
"""
    world = make_world(editions=editions)
    zones = ("Asia/Kolkata", "Europe/London", "America/New_York")
    emails = add_subscribers(world.store, 9, zones)
    for day in (28, 29, 30):
        add_articles(world.store, datetime(2025, 3, day, 23, 0, tzinfo=UTC) - timedelta(days=1))
    # Imported while the environment is still clean: the module's own app (built on
    # import) must not point at this test's short-lived Redis.
    from tasks.app import make_app

    for name in ("DISTRIBUTOR_CONFIG", "DATABASE_URL", "REDIS_URL"):
        monkeypatch.setenv(name, world.env[name])
    settings = load_settings()
    world.procs().worker()

    queue = make_app(settings)  # this test's producer: it queues what a tick would
    start = datetime(2025, 3, 28, 12, 0, tzinfo=UTC)
    schedules.set_marker(world.store, engine.TICK_MARKER, start)
    opened = []
    for step in range(1, 2 * 48 + 1):  # every half hour to 30 March 12:00 UTC
        for run in engine.tick(settings, world.store, start + timedelta(minutes=30 * step)).opened:
            opened.append(run)
            queue.send_task("tasks.editions.build_run", args=[run.id])
    queue.close()

    slots = sorted((run.timezone, run.slot) for run in opened)
    assert slots == [
        ("America/New_York", datetime(2025, 3, 29, 11, 0, tzinfo=UTC)),  # 07:00 EDT (since 9 March)
        ("America/New_York", datetime(2025, 3, 30, 11, 0, tzinfo=UTC)),
        ("Asia/Kolkata", datetime(2025, 3, 29, 1, 30, tzinfo=UTC)),  # 07:00 IST, no DST
        ("Asia/Kolkata", datetime(2025, 3, 30, 1, 30, tzinfo=UTC)),
        ("Europe/London", datetime(2025, 3, 29, 7, 0, tzinfo=UTC)),  # 07:00 GMT
        ("Europe/London", datetime(2025, 3, 30, 6, 0, tzinfo=UTC)),  # 07:00 BST: the clocks went forward at 01:00 UTC
    ]
    world.wait(lambda: all(r.status == "sent" for r in world.runs()) and world.ledger().get("sent") == 18, "all six runs sent")
    world.assert_each_got(emails, 2)
    with world.store.session() as session:
        delivered = session.execute(
            select(SubscriberRow.timezone, EditionRunRow.timezone, func.count())
            .join(DeliveryRow, DeliveryRow.subscriber_id == SubscriberRow.id)
            .join(EditionRunRow, EditionRunRow.id == DeliveryRow.run_id)
            .group_by(SubscriberRow.timezone, EditionRunRow.timezone)
        ).all()
    # Three subscribers per zone, two runs each: every delivery from their own zone's run.
    assert sorted(delivered) == [(zone, zone, 6) for zone in sorted(zones)], world.describe()
