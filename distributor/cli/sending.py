"""`distributor preview` and `distributor send`: look at an issue, then send it.

preview renders one edition's issue exactly as a subscriber would get it and writes the
files; it sends nothing and never touches the ledger. send opens the run of one slot and
dispatches it here and now; the run is unique per (edition, slot), so sending the same
slot again sends nothing unless --force asks for a further run, and continues a run that
was interrupted (the ledger says what is left).
"""

from __future__ import annotations

import json
import signal
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Optional

import typer

from distributor.cli.core import app, checked_settings, open_store, parse_time, settings
from distributor.editions import build_edition, edition_config, previous_slot

# Placeholder reader of a preview with no --subscriber (RFC 2606 reserves example.com).
PREVIEW_ADDRESS = "reader@example.com"


def _edition_or_exit(name: str):  # noqa: ANN202 - EditionConfig
    try:
        return edition_config(settings(), name)
    except KeyError as exc:
        typer.echo(str(exc.args[0]), err=True)
        raise typer.Exit(2) from None


@app.command()
def preview(
    edition: str = typer.Argument(..., help="Edition name from the config, e.g. morning."),
    at: Optional[str] = typer.Option(None, "--at", help="End of the window (ISO 8601 or an age like 2h; default now)."),
    subscriber: Optional[str] = typer.Option(None, "--subscriber", help="Render the variant (sections, name, links) of this subscriber."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for email.html, email.txt, email.eml, telegram.json (default: var/preview)."),
    to: Optional[str] = typer.Option(None, "--to", help="Also mail this preview as a test to ADDRESS (Subject \"[Test] ...\", no delivery recorded)."),
) -> None:
    """Write an issue as email.html, email.txt, email.eml and telegram.json; sends nothing.

    telegram.json lists, in order, the Bot API calls (`{"method", "params"}`) the digest
    would make to every channel that takes this edition.
    """
    from distributor.delivery.telegram import preview_calls
    from distributor import subscribers
    from distributor.render.email import Recipient, fill_html, fill_text, render_variant
    from distributor.runs import previous_run_end

    s = settings()
    config = _edition_or_exit(edition)
    store = open_store()
    moment = parse_time(at) if at else datetime.now(timezone.utc).replace(microsecond=0)
    previous_end = previous_run_end(store, edition, moment) if config.window == "since_last" else None
    issue = build_edition(s, store, edition, at=moment, previous_end=previous_end)

    sections = None
    recipient = None
    text_only = False
    if subscriber:
        found = subscribers.find(store, subscriber)
        if found is None:
            typer.echo(f"no subscriber {subscriber!r}", err=True)
            raise typer.Exit(1)
        sections = found.sections
        text_only = found.format == "text"  # such a reader gets a single text/plain part
        recipient = Recipient(
            email=found.email,
            name=found.name,
            unsubscribe_url=subscribers.unsubscribe_url(s, found.id, found.email),
            preferences_url=subscribers.preferences_url(s, found.id, found.email),
        )
    # The Date header is the window's end, so the same --at always writes the same files.
    variant = render_variant(s, issue, sections=sections, run_id=None, now=moment)
    folder = out or (s.var_dir / "preview")
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "email.html": fill_html(variant, recipient).encode("utf-8"),
        "email.txt": fill_text(variant, recipient).encode("utf-8"),
        "email.eml": variant.message(recipient or Recipient(email=PREVIEW_ADDRESS), text_only=text_only),
        "telegram.json": (json.dumps(preview_calls(s, issue), indent=2, ensure_ascii=False) + "\n").encode("utf-8"),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    window = f"{issue.window.start.astimezone(s.tz):%Y-%m-%d %H:%M} to {issue.window.end.astimezone(s.tz):%Y-%m-%d %H:%M %Z}"
    typer.echo(f"{edition}: window {window}")
    typer.echo(f"subject: {variant.subject}")
    typer.echo(f"variant: {variant.key} ({variant.count} article(s)){' for ' + subscriber if subscriber else ''}")
    if variant.count == 0:
        typer.echo("note: nothing in this window for these sections; such a reader would get no email")
    for name in files:
        typer.echo(f"wrote {folder / name}")
    if to:
        from distributor.delivery.trial import TEST_PREFIX, send_test
        from distributor.subscribers import InvalidAddress, normalise_address

        try:
            address = normalise_address(to)
        except InvalidAddress as exc:
            typer.echo(f"--to: {exc}", err=True)
            raise typer.Exit(2) from None
        test = render_variant(s, issue, sections=sections, run_id=None, now=moment, subject_prefix=TEST_PREFIX)
        result = send_test(s, test, address, name=recipient.name if recipient else "", text_only=text_only)
        if result.outcome != "sent":
            typer.echo(f"test to {address} not sent: {result.code or ''} {result.reply}".strip(), err=True)
            raise typer.Exit(1)
        where = "SMTP" if s.env.smtp_url is not None else f"the outbox ({(s.outbox_dir / 'email').resolve()})"
        typer.echo(f"test sent to {address} through {where}")


@app.command()
def send(
    edition: str = typer.Argument(..., help="Edition name from the config, e.g. morning."),
    at: Optional[str] = typer.Option(
        None, "--at", help="Send the issue of the latest scheduled slot at or before this time (ISO 8601; default now)."
    ),
    force: bool = typer.Option(False, "--force", help="Send again as a further run even if this slot was sent."),
    as_json: bool = typer.Option(False, "--json", help="Print the run's counts as JSON."),
) -> None:
    """Send an edition's issue for one slot, here and now: email (SMTP, or the outbox with
    no SMTP_URL) and a digest post to every Telegram channel that takes this edition.

    The slot is the edition's latest scheduled time at or before --at (its live
    schedule, as `schedule list` shows it), so `send morning` at 10:00 sends the 07:00
    issue, with the same window the scheduler would have used. A slot is sent once: a
    second `send` of a finished slot prints what the first did and sends nothing; of an
    unfinished one (the first was killed, or is still running elsewhere) it resumes the
    run: queued deliveries at once, those a dead sender held once its lease expires,
    none twice. SIGTERM, SIGHUP or Ctrl-C stops it cleanly between messages.
    """
    from distributor import engine, schedules
    from distributor.channels.mail import outbox_email_dir
    from distributor.delivery import leases
    from distributor.delivery.email import dispatch_run
    from distributor.delivery.telegram import post_run
    from distributor.runs import delivery_counts, get_run

    s = checked_settings("send")
    config = _edition_or_exit(edition)
    store = open_store()
    moment = parse_time(at) if at else datetime.now(timezone.utc)
    live = next((x for x in schedules.load(s, store) if x.edition == edition), None)
    if live is not None and live.cron != config.schedule:
        config = config.model_copy(update={"schedule": live.cron})
    slot = previous_slot(config, moment, s.tz)
    when = f"{slot.astimezone(s.tz):%Y-%m-%d %H:%M %Z}"

    run, created = engine.open_slot(s, store, edition, slot, force=force)
    resumed = not created and run.status in UNFINISHED
    if not created and not resumed:
        counts = delivery_counts(store, run.id)
        if as_json:
            typer.echo(json.dumps({"run": run.id, "edition": edition, "slot": slot.isoformat(), "status": run.status, "sent_now": False, **counts}))
            return
        typer.echo(f"{edition} {when}: already done as run #{run.id} ({run.status}); nothing sent (--force sends it again as a new run)")
        typer.echo("email: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        return
    prepared = engine.prepare_run(s, store, run.id)
    if not prepared.ready:
        if as_json:
            typer.echo(json.dumps({"run": run.id, "edition": edition, "slot": slot.isoformat(), "status": prepared.run.status, "reason": prepared.reason}))
            return
        typer.echo(f"{edition} {when}: run #{run.id} not sent: {prepared.reason}")
        return
    before = delivery_counts(store, run.id)
    engine.mark_sending(store, run.id)
    from distributor.cli.progress import polled

    def settled() -> tuple[int, int]:
        counts = delivery_counts(store, run.id)
        return counts["sent"] + counts["failed"] + counts["suppressed"] + counts["deferred"], sum(counts.values())

    with _stop_on_signals(), polled(f"{edition} run #{run.id}", settled, enabled=not as_json):
        report = dispatch_run(s, store, run.id, take_over=resumed)
        posts = [] if leases.stop_requested() else post_run(s, store, run.id)
    engine.finish_if_done(store, run.id)
    status = get_run(store, run.id).status
    stopped = leases.stop_requested()
    if as_json:
        typer.echo(
            json.dumps(
                {"run": run.id, "edition": edition, "slot": slot.isoformat(), "status": status, "sent_now": True,
                 "resumed": resumed, "stopped": stopped, **({"before": before} if resumed else {}), **dict(report),
                 "telegram": [p.line() for p in posts]}
            )
        )
        if stopped:
            raise typer.Exit(1)
        return
    if resumed:
        held = before.get("sending", 0)
        typer.echo(
            f"{edition} {when}: resumed run #{run.id} ({len(prepared.run.article_keys)} article(s)): "
            f"found sent {before['sent']}, queued {before['queued']}, deferred {before['deferred']}, "
            f"failed {before['failed']}, suppressed {before['suppressed']}, held by another sender {held}; now {status}"
        )
    else:
        typer.echo(f"{edition} {when}: run #{run.id} ({len(prepared.run.article_keys)} article(s)), {status}")
    typer.echo(
        f"email: queued {report.queued}, sent {report.sent}, deferred {report.deferred}, "
        f"failed {report.failed}, suppressed {report.suppressed}"
    )
    for post in posts:
        typer.echo(f"telegram: {post.line()}")
    if s.env.smtp_url is None:
        typer.echo(f"outbox (no SMTP_URL): {outbox_email_dir(s).resolve()}")
    if report.deferred:
        typer.echo("deferred deliveries are retried with backoff by the worker (tasks.email.retry_deferred) until their deadline")
    if stopped:
        typer.echo(f"stopped before the end: run `distributor send {edition}` with the same --at to resume run #{run.id}", err=True)
        raise typer.Exit(1)


# Run statuses a second `send` continues rather than reports.
UNFINISHED = ("building", "ready", "sending")


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM, SIGHUP (the terminal closed) and SIGINT stop the sending between messages:
    answers are recorded and unstarted rows released, so `send` can resume. A second
    signal acts as it normally would."""
    from distributor.delivery import leases

    caught = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    previous = {sig: signal.getsignal(sig) for sig in caught}

    def stop(signum: int, frame: object) -> None:  # noqa: ARG001 - a signal handler
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        leases.request_stop()

    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread (e.g. a test runner's worker thread)
        return
    for sig in caught:
        signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
