"""`distributor ...`: the operator's command line.

Each command loads settings once (a bad config stops it with file, key and reason, exit
code 2), does one thing, and prints a result a person can read; `--json` where scripts
want to read it instead.
"""

from __future__ import annotations

import os

import json
import logging
import re
import sys
from datetime import datetime, timedelta, timezone
from typing import List, Optional

import typer

from distributor import logs, startup
from distributor.editions import Edition, build_edition, edition_config
from distributor.errors import ConfigError
from distributor.settings import Settings, load_settings
from distributor.store import Store

log = logging.getLogger("distributor.cli")

app = typer.Typer(
    help="Newsletter and Telegram distribution bot for news sites.",
    no_args_is_help=True,
    add_completion=False,
    # Rich tracebacks print local variables, which can hold secrets (SMTP_URL, tokens).
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


class _State:
    config: Optional[str] = None
    settings: Optional[Settings] = None


state = _State()


@app.callback()
def _main(
    config: Optional[str] = typer.Option(
        None, "--config", "-c", help="Config file (default: $DISTRIBUTOR_CONFIG, ./config/distributor.toml)."
    ),
    log_level: str = typer.Option("WARNING", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
) -> None:
    state.config = config
    state.settings = None
    logs.configure(log_level)


def settings() -> Settings:
    """The settings, loaded on first use; a bad config ends the command with exit code 2."""
    if state.settings is None:
        try:
            state.settings = load_settings(state.config)
        except ConfigError as exc:
            typer.echo(f"configuration error:\n{exc}", err=True)
            raise typer.Exit(2) from None
        logs.configure(logging.getLevelName(logging.getLogger().level), state.settings.secrets())
    return state.settings


def checked_settings(process: str, *, web_host: str | None = None) -> Settings:
    """The settings of a command that signs, verifies or sends, or exit 2 when it must not
    start: outside the demo with a public or weak key, or real sending to dead links."""
    from distributor.startup import refusal

    s = settings()
    message = refusal(f"distributor {process}", s, web_host=web_host)
    if message:
        typer.echo(f"configuration error:\n{message}", err=True)
        raise typer.Exit(2)
    return s


def bind_web(host: str, port: int):  # noqa: ANN201 - a socket.socket
    """The web app's listening socket, bound now, or exit 1 naming the address: a taken
    port must stop the start, not leave a process running without its web app."""
    from distributor.web.serving import BindError, bind

    try:
        return bind(host, port)
    except BindError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


def open_store(migrate: bool = False) -> Store:
    store = Store(settings().database_url)
    if migrate:
        store.migrate(site_timezone=settings().site.timezone)
    elif not store.is_initialised():
        typer.echo(
            f"the database {store.describe()} has no schema yet: run `distributor init` first", err=True
        )
        raise typer.Exit(2)
    elif store.current_revision() != store.head_revision():
        typer.echo(
            f"the database {store.describe()} is at schema {store.current_revision() or 'none'}, this "
            f"version needs {store.head_revision()}: run `distributor init` to upgrade it",
            err=True,
        )
        raise typer.Exit(2)
    return store


_RELATIVE = re.compile(r"^(\d+)\s*([mhd])$")


def parse_time(value: str, *, now: datetime | None = None) -> datetime:
    """ISO 8601 (a time without zone is in the site timezone) or an age like 90m, 6h, 2d."""
    now = now or datetime.now(timezone.utc)
    match = _RELATIVE.match(value.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return now - {"m": timedelta(minutes=amount), "h": timedelta(hours=amount), "d": timedelta(days=amount)}[unit]
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither ISO 8601 nor an age like 6h") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=settings().tz)
    return moment.astimezone(timezone.utc)


# --- init / config -------------------------------------------------------------------


@app.command()
def init() -> None:
    """Create the database, or upgrade it to the newest schema."""
    store = open_store(migrate=True)
    revision = store.current_revision()
    typer.echo(f"database ready: {store.describe()} (schema {revision})")


@config_app.command("check")
def config_check() -> None:
    """Validate the config file and environment; print what is in force."""
    s = settings()
    typer.echo(f"config: {s.config_path} OK")
    typer.echo(f"site: {s.site.name} <{s.site.base_url}> timezone {s.site.timezone}")
    typer.echo("sections: " + ", ".join(f"{x.label} ({x.slug})" for x in s.sections))
    typer.echo(f"fallback section: {s.site.fallback_section}")
    typer.echo("sources: " + (", ".join(f"{x.name} every {x.poll_minutes} min" for x in s.file.sources) or "none"))
    typer.echo("editions: " + (", ".join(f"{k} [{v.schedule}]" for k, v in s.editions.items()) or "none"))
    typer.echo("channels: " + (", ".join(f"{k} ({v.destination})" for k, v in s.channels.items()) or "none"))
    typer.echo(f"database: {Store(s.database_url).describe()}")
    typer.echo(f"broker: {'Redis' if s.redis_url else 'in-process (no REDIS_URL)'}")
    typer.echo(f"email: {'SMTP' if s.env.smtp_url else 'outbox files (no SMTP_URL)'}")
    typer.echo(f"telegram: {'Bot API' if s.env.telegram_bot_token else 'outbox files (no TELEGRAM_BOT_TOKEN)'}")
    # The same rule the processes apply (worker, beat, send; web and run also count the
    # address they bind, see `web --host`).
    breakers = startup.demo_breakers(s)
    if not breakers:
        typer.echo(
            "mode: local demo (outbox files, links to this machine): the demo key is accepted; "
            "SMTP_URL, TELEGRAM_BOT_TOKEN, a public PUBLIC_BASE_URL or `web --host` beyond loopback end it"
        )
        if s.secret_key_is_demo:
            typer.echo("warning: SECRET_KEY is not set; a public demo key signs webhooks and links", err=True)
        return
    typer.echo(f"mode: production ({'; '.join(breakers)})")
    problems = startup.startup_problems(s)
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        raise typer.Exit(2)


# --- ingest / articles ---------------------------------------------------------------


@app.command()
def ingest(
    sources: List[str] = typer.Argument(None, help="Configured source names, file paths or URLs (default: all enabled sources)."),
    as_json: bool = typer.Option(False, "--json", help="Print the reports as JSON."),
) -> None:
    """Fetch and store articles. Exit code 1 only if a source could not be read at all."""
    from distributor.ingest.pipeline import ingest_sources

    s = settings()
    store = open_store()
    from distributor.cli.progress import Progress

    bar = Progress("ingest", enabled=not as_json)
    try:
        reports = ingest_sources(s, store, sources or (), progress=lambda done, total: bar.update(done, total) if total > 1 else None)
    finally:
        bar.finish()
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in reports], indent=2, ensure_ascii=False))
    else:
        for report in reports:
            typer.echo(report.summary())
            for article in report.new:
                typer.echo(f"  new       [{article.section}] {article.title}")
            for article in report.updated:
                typer.echo(f"  updated   [{article.section}] {article.title} (v{article.version})")
            for reason in report.duplicates:
                typer.echo(f"  duplicate {reason}")
            for reason in report.rejected:
                typer.echo(f"  rejected  {reason}")
    if any(not r.ok for r in reports):
        raise typer.Exit(1)


@app.command()
def articles(
    section: Optional[str] = typer.Option(None, "--section", "-s", help="Section slug."),
    since: Optional[str] = typer.Option(None, "--since", help="ISO 8601 time or an age like 6h."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=10000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List stored articles, newest first."""
    from distributor.store.articles import list_articles

    s = settings()
    if section and section not in {x.slug for x in s.sections}:
        typer.echo(f"unknown section {section!r}; sections: {', '.join(x.slug for x in s.sections)}", err=True)
        raise typer.Exit(2)
    found = list_articles(open_store(), section=section, since=parse_time(since) if since else None, limit=limit)
    if as_json:
        typer.echo(json.dumps([_article_json(a) for a in found], indent=2, ensure_ascii=False))
        return
    for a in found:
        when = a.published_at.astimezone(s.tz).strftime("%Y-%m-%d %H:%M")
        marks = "".join([" [updated]" if a.is_updated else "", " [trending]" if a.trending else "", " [no date]" if a.date_missing else ""])
        typer.echo(f"{when}  {a.section:<13} {a.title}{marks}\n{'':18}{a.url}")
    typer.echo(f"{len(found)} article(s)")


def _article_json(a) -> dict:  # noqa: ANN001
    return {
        "key": a.key,
        "url": a.url,
        "title": a.title,
        "standfirst": a.standfirst,
        "section": a.section,
        "byline": a.byline,
        "dateline": a.dateline,
        "published_at": a.published_at.isoformat(),
        "updated_at": a.updated_at.isoformat() if a.updated_at else None,
        "image_url": a.image_url,
        "image_caption": a.image_caption,
        "image_width": a.image_width,
        "image_height": a.image_height,
        "tags": list(a.tags),
        "read_minutes": a.read_minutes,
        "also_read": [{"title": r.title, "url": r.url} for r in a.also_read],
        "trending": a.trending,
        "date_missing": a.date_missing,
        "version": a.version,
        "source": a.source,
    }


# --- editions ------------------------------------------------------------------------


def edition_text(edition: Edition, s: Settings) -> str:
    """A plain-text view of an issue, for the console and the run output."""
    start = edition.window.start.astimezone(s.tz).strftime("%Y-%m-%d %H:%M")
    end = edition.window.end.astimezone(s.tz).strftime("%Y-%m-%d %H:%M %Z")
    lines = [f"{s.site.name} - {edition.label}", f"window {start} to {end}: {edition.count} article(s)"]
    if edition.trending:
        lines += ["", "TRENDING"] + [f"  * {a.title}  <{a.url}>" for a in edition.trending]
    for group in edition.groups:
        lines += ["", group.section.label.upper()]
        lines += [f"  * {a.title}{' (updated)' if a.is_updated else ''}  <{a.url}>" for a in group.articles]
    if edition.omitted:
        lines += ["", f"+ {edition.omitted} more on the site"]
    return "\n".join(lines) + "\n"


@app.command()
def edition(
    name: str = typer.Argument(..., help="Edition name from the config, e.g. morning."),
    at: Optional[str] = typer.Option(None, "--at", help="End of the window (ISO 8601; default now)."),
    sections: Optional[str] = typer.Option(
        None, "--sections", help="Show the variant of a reader of these sections (slugs separated by spaces, commas or semicolons; default: all)."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Build an edition's issue for the window ending at --at and show one reader's variant
    of it, with the limits applied (sends nothing)."""
    from distributor.subscribers import InvalidPreference, check_sections

    s = settings()
    try:
        edition_config(s, name)
    except KeyError as exc:
        typer.echo(str(exc.args[0]), err=True)
        raise typer.Exit(2) from None
    try:
        chosen = check_sections(s, sections)
    except InvalidPreference as exc:
        typer.echo(f"--{exc}", err=True)  # "--sections: unknown section ..."
        raise typer.Exit(2) from None
    moment = parse_time(at) if at else datetime.now(timezone.utc)
    issue = build_edition(s, open_store(), name, at=moment).for_sections(chosen)
    typer.echo(json.dumps(issue.as_dict(), indent=2, ensure_ascii=False) if as_json else edition_text(issue, s), nl=not as_json)


# --- run / web -----------------------------------------------------------------------


def prepare_metrics(s: Settings) -> None:
    """With [metrics] on, point PROMETHEUS_MULTIPROC_DIR at var/metrics/ (unless set) so
    every worker process writes its counters there and `/metrics` adds them up. Must run
    before anything imports prometheus_client, which picks its value store at import."""
    if not s.file.metrics.enabled:
        return
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str((s.var_dir / "metrics").resolve())
    os.makedirs(folder, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder


@app.command()
def web(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
) -> None:
    """Serve the HTTP app: webhooks, subscriber pages, archive, click links, operator API."""
    s = checked_settings("web", web_host=host)
    prepare_metrics(s)
    from distributor.web.app import create_app
    from distributor.web.serving import serve

    store = open_store()
    sock = bind_web(host, port)
    hook = signup_hook = None
    if s.redis_url:
        # With a broker, instant posts after a webhook go to the telegram queue's workers,
        # and subscribe requests' confirmation emails to the workers of the ingest queue.
        from tasks.ingest import queue_after_ingest as hook
        from tasks.subscribers import queue_signup as signup_hook
    serve(create_app(s, store, on_ingested=hook, on_signup=signup_hook), sock)


def main() -> None:
    try:
        app()
    except ConfigError as exc:  # raised outside `settings()`, e.g. by a late lookup
        typer.echo(f"configuration error:\n{exc}", err=True)
        sys.exit(2)
