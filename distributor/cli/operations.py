"""Operating the bot: schedules, runs, and the worker / beat / web processes.

Process commands import `tasks` lazily: Celery lives there, never in the domain.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import Optional
from zoneinfo import ZoneInfo

import typer
from sqlalchemy import select

from distributor import reports, schedules
from distributor.cli.core import app, bind_web, checked_settings, open_store, prepare_metrics, settings, state
from distributor.runs import delivery_counts, telegram_counts
from distributor.store.models import EditionRunRow

schedule_app = typer.Typer(help="See and change edition schedules while everything runs.", invoke_without_command=True)
app.add_typer(schedule_app, name="schedule")


def _fail(message: str, code: int = 2) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _describe(schedule: schedules.Schedule, tz: ZoneInfo, now: datetime) -> dict:
    config = settings().editions[schedule.edition]
    upcoming = [] if schedule.paused else schedules.next_slots(schedule.cron, tz, now, 3)
    return {
        "edition": schedule.edition,
        "cron": schedule.cron,
        "paused": schedule.paused,
        "changed_by": schedule.changed_by,
        "local_time": config.local_time,
        "next": [slot.astimezone(tz).isoformat() for slot in upcoming],
    }


@schedule_app.callback()
def schedule_list_default(ctx: typer.Context) -> None:
    """With no subcommand: the same as `schedule list`."""
    if ctx.invoked_subcommand is None:
        schedule_list(as_json=False)


@schedule_app.command("list")
def schedule_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Each edition's schedule in force and its next 3 run times (site timezone)."""
    s = settings()
    current = schedules.seed(s, open_store())
    now = datetime.now(timezone.utc)
    rows = [_describe(item, ZoneInfo(s.site.timezone), now) for item in current]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        state_text = "PAUSED" if row["paused"] else ", ".join(row["next"])
        local = " (subscriber-local time)" if row["local_time"] else ""
        typer.echo(f"{row['edition']:<10} {row['cron']:<14} [{row['changed_by']}]{local}  next: {state_text}")


def _change(action, edition: str, *args) -> None:  # noqa: ANN001
    s = settings()
    try:
        result = action(s, open_store(), edition, *args)
    except KeyError as exc:
        _fail(str(exc.args[0]))
    except ValueError as exc:
        _fail(str(exc))
    row = _describe(result, ZoneInfo(s.site.timezone), datetime.now(timezone.utc))
    status = "paused" if row["paused"] else f"next: {', '.join(row['next'])}"
    typer.echo(f"{edition}: {row['cron']} ({status}); takes effect within {s.file.scheduler.tick_seconds} s")


@schedule_app.command("set")
def schedule_set(edition: str, cron: str = typer.Argument(..., help='Cron in the site timezone, e.g. "0 7 * * *".')) -> None:
    """Change an edition's schedule (kept in the database; survives restarts)."""
    _change(schedules.set_cron, edition, cron)


@schedule_app.command("pause")
def schedule_pause(edition: str) -> None:
    """Stop an edition's scheduled runs until resumed."""
    _change(schedules.pause, edition)


@schedule_app.command("resume")
def schedule_resume(edition: str) -> None:
    """Resume a paused edition."""
    _change(schedules.resume, edition)


@schedule_app.command("reset")
def schedule_reset(edition: str) -> None:
    """Return an edition to the config file's schedule."""
    _change(schedules.reset, edition)


@schedule_app.command("run-now")
def schedule_run_now(
    edition: str,
    force: bool = typer.Option(False, "--force", help="A further run even if this minute already has one."),
    wait: bool = typer.Option(False, "--wait", help="Do the whole run in this process instead of queueing it."),
) -> None:
    """Run an edition now: queued to the workers (or done here with --wait)."""
    s = checked_settings("schedule run-now")
    if edition not in s.editions:
        _fail(f"unknown edition {edition!r} (configured: {', '.join(s.editions)})")
    if wait or not s.redis_url:
        from distributor.cycle import run_edition_now

        report = run_edition_now(s, open_store(), edition, datetime.now(timezone.utc), force=force)
        typer.echo(report)
        return
    from distributor import engine
    from tasks.editions import build_run

    # The run row comes first, so a task lost by the broker is rebuilt by the next tick.
    run, created = engine.run_now(s, open_store(), edition, datetime.now(timezone.utc), force=force)
    if not created:
        typer.echo(f"{edition}: run #{run.id} for this minute exists already ({run.status}); nothing queued")
        return
    build_run.delay(run.id)
    typer.echo(f"{edition}: run #{run.id} queued")


@app.command()
def runs(
    edition: Optional[str] = typer.Option(None, "--edition", "-e"),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Recent edition runs with their delivery counts."""
    s = settings()
    store = open_store()
    query = select(EditionRunRow).order_by(EditionRunRow.created_at.desc(), EditionRunRow.id.desc()).limit(limit)
    if edition:
        query = query.where(EditionRunRow.edition == edition)
    with store.session() as session:
        rows = list(session.scalars(query))
    items = []
    for row in rows:
        items.append(
            {
                "id": row.id,
                "edition": row.edition,
                "slot": row.slot.astimezone(s.tz).isoformat(),
                "timezone": row.timezone,
                "attempt": row.attempt,
                "status": row.status,
                "articles": len(row.article_keys or []),
                "email": delivery_counts(store, row.id),
                "telegram": telegram_counts(store, row.id),
                # Readers this run's mail bounced from or who complained about it.
                "suppressed_by": reports.bounces(store, row.id),
                "note": row.note,
            }
        )
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    if not items:
        typer.echo("no runs yet")
    for item in items:
        email = item["email"]
        zone = f" {item['timezone']}" if item["timezone"] else ""
        typer.echo(
            f"#{item['id']:<5} {item['edition']:<9} {item['slot']}{zone} {item['status']:<8} "
            f"articles={item['articles']} queued={email['queued']} sent={email['sent']} "
            f"deferred={email['deferred']} failed={email['failed']} suppressed={email['suppressed']} "
            f"bounced={item['suppressed_by']['bounced']} complained={item['suppressed_by']['complained']} "
            f"telegram={sum(item['telegram'].values())}" + (f"  ({item['note']})" if item["note"] else "")
        )


def _export_config() -> None:
    # Celery's processes load settings themselves (tasks.runtime); --config must reach them.
    if state.config:
        os.environ["DISTRIBUTOR_CONFIG"] = os.path.abspath(state.config)


@app.command()
def worker(
    queues: str = typer.Option(",".join(("ingest", "editions", "email", "telegram")), "--queues", "-Q"),
    concurrency: int = typer.Option(2, "--concurrency", "-c", min=1),
    events: bool = typer.Option(False, "--events", "-E", help="Send Celery task events (for Flower or `celery events`)."),
) -> None:
    """A Celery worker (production: one or more per queue group; needs REDIS_URL)."""
    s = checked_settings("worker")
    if not s.redis_url:
        _fail("`distributor worker` needs REDIS_URL; without it use `distributor run` (one process)")
    _export_config()
    prepare_metrics(s)
    open_store(migrate=True)
    from tasks.worker import start_worker

    start_worker([q for q in queues.split(",") if q], concurrency=concurrency, events=events)



@app.command()
def beat() -> None:
    """The Celery beat heartbeat (production; needs REDIS_URL)."""
    s = checked_settings("beat")
    if not s.redis_url:
        _fail("`distributor beat` needs REDIS_URL; without it use `distributor run` (one process)")
    _export_config()
    open_store(migrate=True)
    from tasks.worker import start_beat

    start_beat(schedule_file=str(s.var_dir / "celerybeat-schedule"))


def _outbox_summary(s) -> list[str]:  # noqa: ANN001 - Settings
    lines = []
    for kind, pattern in (("email", "*.eml"), ("telegram", "*.json"), ("mastodon", "*.json"), ("bluesky", "*.json")):
        folder = (s.outbox_dir / kind).resolve()
        count = len(list(folder.glob(pattern))) if folder.exists() else 0
        if count:
            lines.append(f"outbox: {count} {kind} file(s) in {folder}")
    return lines


def _console_lines(s, store, host: str, port: int) -> list[str]:  # noqa: ANN001 - Settings, Store
    """Where the pages are; in the zero-configuration demo (outboxes only, web on loopback)
    the first run also makes an admin "demo" and prints its password, once."""
    from distributor import operators

    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    lines = [f"subscribe page: http://{shown}:{port}/subscribe", f"console: http://{shown}:{port}/admin"]
    from distributor.startup import is_demo

    if is_demo(s, web_host=host):
        login = operators.ensure_demo_operator(store)
        if login is not None:
            lines.append(f"console demo login (shown once): {login[0]} / {login[1]}")
    elif operators.count(store) == 0:
        lines.append("console: no operators yet; add one with `distributor operators add NAME --role admin`")
    return lines


@app.command()
def run(
    once: bool = typer.Option(False, "--once", help="One full cycle, then exit."),
    web: bool = typer.Option(True, "--web/--no-web", help="Also serve the web app."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
) -> None:
    """The main job: worker, beat and web in one process, after a first full cycle.

    The first cycle ingests every source, posts new articles, and sends each edition that
    never ran in this database, so a fresh install shows output at once. With no
    REDIS_URL everything runs in this process (in-memory broker, SQLite, outbox files).
    """
    from distributor.cycle import first_cycle

    serves = web and not once
    s = checked_settings("run", web_host=host if serves else None)
    # Bound before the first cycle: a taken port stops the start before anything is sent.
    sock = bind_web(host, port) if serves else None
    store = open_store(migrate=True)
    typer.echo(f"database: {store.describe()}")
    report = first_cycle(s, store, datetime.now(timezone.utc))
    typer.echo(str(report))
    for line in _outbox_summary(s):
        typer.echo(line)
    if once:
        return
    if sock is not None:
        port = sock.getsockname()[1]  # the real one when --port 0 asked for any free port
        for line in _console_lines(s, store, host, port):
            typer.echo(line)
    _export_config()
    broker = "Redis" if s.redis_url else "in-process memory broker"
    typer.echo(f"running worker and beat ({broker})" + (f", web on http://{host}:{port}" if web else "") + "; Ctrl-C stops")
    from tasks.worker import start_all

    start_all(web=sock, schedule_file=str(s.var_dir / "celerybeat-schedule"))
