"""`distributor inbound`: receive bounces, complaints and mailto unsubscribes.

Over SMTP (the bounce domain's MX, or a relay forwarding to it), LMTP (behind an MTA
such as Postfix), or IMAP (`--imap URL`, when the MX is elsewhere and the mail lands in
a mailbox). Also `distributor subscribers reinstate` lives with the subscriber commands.
"""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from distributor.cli.core import app, checked_settings, open_store


@app.command()
def inbound(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 for an MX)."),
    port: int = typer.Option(2525, "--port", help="Port to listen on (25 for an MX)."),
    lmtp: bool = typer.Option(False, "--lmtp", help="Speak LMTP instead of SMTP (behind Postfix or another MTA)."),
    imap: Optional[str] = typer.Option(
        None, "--imap", help="Read a mailbox instead: imap[s]://user:password@host[:port][/folder]; reads once and exits."
    ),
    file: Optional[list[str]] = typer.Option(
        None, "--file", help="Handle these .eml files (or - for standard input) once and exit; for replays and tests."
    ),
) -> None:
    """Receive bounces, complaints and mailto unsubscribes and act on them."""
    # Listening beyond this machine, or reading mail from outside, is not the demo: the
    # public demo key would let anyone forge the tokens.
    s = checked_settings("inbound", web_host=host if not (imap or file) else None)
    if imap and s.secret_key_is_demo:
        typer.echo("configuration error: SECRET_KEY is not set; with the public demo key anyone who can "
                   "mail the mailbox could forge bounce and unsubscribe tokens", err=True)
        raise typer.Exit(2)
    if not s.file.email.bounce_domain:
        typer.echo("email.bounce_domain is not set: no mail comes back to this server", err=True)
        raise typer.Exit(2)
    store = open_store()
    if file:
        from distributor.inbound.process import handle_message

        for name in file:
            try:
                raw = sys.stdin.buffer.read() if name == "-" else open(name, "rb").read()  # noqa: SIM115
            except OSError as exc:
                typer.echo(f"{name}: cannot read: {exc.strerror}", err=True)
                continue
            done = handle_message(s, store, raw, source="operator")
            typer.echo(json.dumps({"file": name, "outcome": done.found.outcome, "delivery": done.found.delivery_id,
                                   "events": done.applied.events, "duplicate": done.duplicate}))
        return
    if imap:
        from distributor.inbound.imap import ImapError, fetch_and_handle

        try:
            report = fetch_and_handle(s, store, imap)
        except ImapError as exc:
            typer.echo(f"imap: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(json.dumps(report.as_dict()))
        return
    from distributor.inbound.receiver import serve

    typer.echo(f"inbound {'LMTP' if lmtp else 'SMTP'} server on {host}:{port} for @{s.file.email.bounce_domain}")
    try:
        serve(s, store, host=host, port=port, lmtp=lmtp)
    except OSError as exc:
        typer.echo(f"cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None


@app.command("inbound-log")
def inbound_log(
    outcome: Optional[str] = typer.Option(None, "--outcome", help="Only this outcome, e.g. unknown (kept for you to read)."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=10_000),
    show: bool = typer.Option(False, "--show", help="Print the first bytes kept of each unknown message."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Inbound messages and webhook events handled, newest first, with what they were."""
    from distributor.inbound.classify import OUTCOMES
    from distributor.inbound.process import recent

    if outcome is not None and outcome not in OUTCOMES:
        typer.echo(f"unknown outcome {outcome!r}; outcomes: {', '.join(OUTCOMES)}", err=True)
        raise typer.Exit(2)
    checked_settings("inbound-log")
    items = recent(open_store(), outcome=outcome, limit=limit)
    if as_json:
        typer.echo(json.dumps(items, indent=2, ensure_ascii=False))
        return
    if not items:
        typer.echo("nothing handled yet")
    for item in items:
        detail = item["detail"]
        why = detail.get("status") or detail.get("reason") or detail.get("note") or ""
        typer.echo(
            f"{item['received_at']}  {item['source']:<8} {item['outcome']:<12} "
            f"delivery={item['delivery_id'] or '-'} subscriber={item['subscriber_id'] or '-'}  {why}  {item['key']}".rstrip()
        )
        if show and item["excerpt"]:
            typer.echo("    " + item["excerpt"][:2000].replace("\n", "\n    "))
