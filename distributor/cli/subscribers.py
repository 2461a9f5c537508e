"""`distributor subscribers ...`: add, import, export, remove, show and list readers.

Operators vouch for consent with --confirmed (a list that opted in elsewhere); without
it an address is pending and is sent a confirmation email. --confirmed never overrides a
reader's own unsubscribe or a bounce/complaint: such addresses get a confirmation email.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from distributor import subscribers as subs
from distributor.cli.core import app, checked_settings, open_store, settings

subscribers_app = typer.Typer(help="Email subscribers: add, import, export, remove, show, list.", no_args_is_help=True)
app.add_typer(subscribers_app, name="subscribers")


def _describe(s: subs.Subscriber) -> str:
    return (
        f"{s.email}  {s.status}\n"
        f"  sections  {', '.join(s.sections) if s.sections is not None else 'all'}\n"
        f"  editions  {', '.join(s.editions) if s.editions is not None else 'default (' + ', '.join(subs.default_editions(settings())) + ')'}\n"
        f"  timezone  {s.timezone}\n"
        f"  format    {s.format}\n"
        f"  name      {s.name or '-'}\n"
        f"  source    {s.source or '-'}\n"
        f"  created   {s.created_at.isoformat()}\n"
        f"  confirmed {s.confirmed_at.isoformat() if s.confirmed_at else '-'}\n"
        f"  changed   {s.status_changed_at.isoformat()}"
    )


def _send_or_warn(subscriber: subs.Subscriber) -> None:
    [result] = subs.send_confirmations(settings(), [subscriber])
    if result.outcome == "sent":
        typer.echo(f"confirmation email sent to {subscriber.email} ({result.reply})")
    else:
        typer.echo(
            f"warning: the confirmation email to {subscriber.email} was not sent ({result.outcome}: {result.reply}); "
            "run the same command again later",
            err=True,
        )


@subscribers_app.command("add")
def add(
    email: str = typer.Argument(..., help="The address."),
    sections: Optional[str] = typer.Option(None, "--sections", help="Section slugs separated by spaces or semicolons (default: all)."),
    editions: Optional[str] = typer.Option(None, "--editions", help="Edition names separated by spaces or semicolons (default: the config's default editions)."),
    tz: Optional[str] = typer.Option(None, "--tz", help="IANA timezone (default: the site's)."),
    format: Optional[str] = typer.Option(None, "--format", help="html or text (default html)."),  # noqa: A002
    name: Optional[str] = typer.Option(None, "--name", help="Name for the greeting."),
    confirmed: bool = typer.Option(False, "--confirmed", help="The reader opted in elsewhere: no confirmation email."),
) -> None:
    """Add a subscriber: pending with a confirmation email, or confirmed with --confirmed."""
    s = checked_settings("subscribers add")
    store = open_store()
    before = subs.find(store, email)
    try:
        subscriber, needs_confirmation = subs.subscribe(
            s, store, email, sections=sections, editions=editions, timezone=tz, format=format, name=name,
            confirmed=confirmed, source="cli",
        )
    except (subs.InvalidAddress, subs.InvalidPreference) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if before is not None and before.status == "confirmed":
        typer.echo(f"{subscriber.email} is already confirmed; nothing changed (readers change preferences through their preferences link)")
        return
    if before is not None and before.status in ("unsubscribed", *subs.SUPPRESSED) and confirmed:
        typer.echo(f"{subscriber.email} was {before.status}: --confirmed does not override that; it is pending until the reader confirms")
    typer.echo(f"{subscriber.email}: {subscriber.status}")
    if needs_confirmation:
        _send_or_warn(subscriber)


@subscribers_app.command("import")
def import_(
    file: Path = typer.Argument(..., help="CSV with columns email, sections, editions, timezone, format, name."),
    confirmed: bool = typer.Option(False, "--confirmed", help="The list opted in elsewhere: no confirmation emails."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Import a CSV list; bad rows are reported by line number and the rest imported.

    Addresses already on the list are skipped, never changed. Exit code 1 only when
    nothing could be read.
    """
    from distributor.cli.progress import Progress

    bar = Progress(f"import {file.name}", enabled=not as_json)
    try:
        report = subs.import_csv(
            checked_settings("subscribers import"), open_store(), file, confirmed=confirmed,
            progress=lambda stage, done, total: bar.update(done, total),
        )
    finally:
        bar.finish()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "added": report.added,
                    "skipped": [{"line": line, "email": email, "reason": why} for line, email, why in report.skipped],
                    "errors": [{"line": line, "reason": why} for line, why in report.errors],
                    "confirmations_sent": report.confirmations,
                    "confirmation_failures": [{"email": e, "reply": r} for e, r in report.confirmation_failures],
                    "fatal": report.fatal or None,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        for line, email, why in report.skipped:
            typer.echo(f"line {line}: skipped {email}: {why}")
        for line, why in report.errors:
            typer.echo(f"line {line}: {why}", err=True)
        for email, reply in report.confirmation_failures:
            typer.echo(f"confirmation not sent to {email}: {reply}", err=True)
        typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(1)


@subscribers_app.command("export")
def export(
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write to this file (default: standard output)."),
    status: Optional[str] = typer.Option(None, "--status", help="Only this status."),
) -> None:
    """The list as CSV (importable again: empty sections/editions mean all/default)."""
    settings()
    store = open_store()
    _check_status(status)
    if out is None:
        subs.export_csv(store, sys.stdout, status=status)
        return
    with open(out, "w", encoding="utf-8", newline="") as handle:
        written = subs.export_csv(store, handle, status=status)
    typer.echo(f"{written} subscriber(s) written to {out}", err=True)


@subscribers_app.command("remove")
def remove(
    email: str = typer.Argument(..., help="The address."),
    purge: bool = typer.Option(False, "--purge", help="Delete the address and its delivery records (erasure request)."),
) -> None:
    """Unsubscribe an address; with --purge, delete it and its deliveries entirely."""
    settings()
    store = open_store()
    if purge:
        if subs.purge(store, email):
            typer.echo(f"{email.strip()} deleted with its delivery records")
            return
        typer.echo(f"no subscriber has the address {email.strip()!r}", err=True)
        raise typer.Exit(1)
    try:
        subscriber, changed = subs.unsubscribe_address(store, email)
    except subs.UnknownSubscriber as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{subscriber.email} unsubscribed" if changed else f"{subscriber.email} was already {subscriber.status}; nothing changed")


@subscribers_app.command("show")
def show(
    email: str = typer.Argument(..., help="The address."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """One subscriber's status and preferences."""
    settings()
    try:
        subscriber = subs.show(open_store(), email)
    except subs.UnknownSubscriber as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    from distributor.inbound.events import events_for

    history = events_for(open_store(), subscriber.id)
    if as_json:
        typer.echo(json.dumps({**subscriber.as_dict(), "events": [e.as_dict() for e in history]}, indent=2, ensure_ascii=False))
        return
    typer.echo(_describe(subscriber))
    if history:
        typer.echo("  events")
        for event in history:
            where = f" run {event.run_id}" if event.run_id is not None else ""
            evidence = ", ".join(f"{k}={v}" for k, v in sorted(event.detail.items()))
            typer.echo(f"    {event.at.isoformat()}  {event.kind:<12} {event.source}{where}  {evidence}".rstrip())


@subscribers_app.command("reinstate")
def reinstate(
    email: str = typer.Argument(..., help="The address."),
    note: str = typer.Option("", "--note", help="Why (kept with the event)."),
    operator: str = typer.Option("", "--operator", help="Who is reinstating (kept with the event)."),
) -> None:
    """Undo a bounce or complaint (e.g. a mailbox that was full, a complaint made by
    mistake): the reader gets mail again, and the change is recorded as an event."""
    settings()
    from distributor.inbound.events import reinstate as do_reinstate

    try:
        subscriber, changed = do_reinstate(open_store(), email, operator=operator, note=note)
    except subs.UnknownSubscriber as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    if changed:
        typer.echo(f"{subscriber.email} reinstated: now {subscriber.status}")
    else:
        typer.echo(f"{subscriber.email} is {subscriber.status}: only a bounced or complained subscriber can be reinstated", err=True)
        raise typer.Exit(1)


def _check_status(status: str | None) -> None:
    if status is not None and status not in subs.STATUSES:
        typer.echo(f"unknown status {status!r}; statuses: {', '.join(subs.STATUSES)}", err=True)
        raise typer.Exit(2)


@subscribers_app.command("list")
def list_(
    status: Optional[str] = typer.Option(None, "--status", help="Only this status: " + ", ".join(subs.STATUSES) + "."),
) -> None:
    """Subscribers by id, one a line, then the count per status."""
    settings()
    _check_status(status)
    store = open_store()
    shown = 0
    for s in subs.iter_subscribers(store, status=status):
        sections = ";".join(s.sections) if s.sections is not None else "all"
        editions = ";".join(s.editions) if s.editions is not None else "default"
        typer.echo(f"{s.email}\t{s.status}\t{sections}\t{editions}\t{s.timezone}\t{s.format}")
        shown += 1
    total = subs.counts(store)
    typer.echo(f"{shown} shown; " + ", ".join(f"{k} {v}" for k, v in total.items()), err=True)
