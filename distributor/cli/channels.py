"""`distributor channels ...`: social channels (Telegram, Mastodon, Bluesky): list, status, test, post, resume.

Also the pieces the edition commands use: `send_run_to_channels` (for `distributor send
EDITION`) and `preview_calls` (for `distributor preview EDITION --out DIR`, which writes
them as telegram.json).
"""

from __future__ import annotations

import json

import typer

from distributor.cli.core import app, checked_settings, open_store, settings

channels_app = typer.Typer(help="Social channels (Telegram, Mastodon, Bluesky): list, status, test, post, resume.",
                           no_args_is_help=True)
app.add_typer(channels_app, name="channels")


def preview_calls(s, edition) -> list[dict]:
    """The Bot API calls (`{"method", "params"}`, chat_id included) a digest of `edition`
    makes, in order, for every channel that takes it. Nothing is sent."""
    from distributor.delivery.telegram import preview_calls as calls

    return calls(s, edition)


def send_run_to_channels(s, store, run_id: int) -> list[str]:
    """Post an edition run to every channel taking it as a digest; one line per channel."""
    from distributor.delivery import social
    from distributor.delivery.telegram import post_run

    reports = post_run(s, store, run_id) + social.post_run(s, store, run_id)
    return [report.line() for report in reports]


def _known(name: str) -> None:
    s = settings()
    if name not in s.channels:
        known = ", ".join(s.channels) or "none"
        typer.echo(f"unknown channel {name!r} (configured: {known})", err=True)
        raise typer.Exit(2)


@channels_app.command("list")
def channels_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """The configured channels: destination, sections, modes, quiet and silent hours, and
    how posts leave (the service's API or the outbox)."""
    from distributor.channels.destinations import destination

    s = settings()
    rows = []
    for name, config in s.channels.items():
        where = destination(s, name)
        rows.append(
            {
                "channel": name,
                "kind": config.kind,
                "chat_id": config.destination,
                "account": where.account,
                "via": where.via,
                "sections": list(config.sections) or ["(all)"],
                "instant": config.instant,
                "digests": list(config.digests),
                "quiet_hours": config.quiet_hours,
                "silent_hours": config.silent_hours,
                "disable_link_preview": config.disable_link_preview,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        modes = (["instant"] if row["instant"] else []) + [f"digest:{d}" for d in row["digests"]]
        extra = "".join(
            [
                f" quiet {row['quiet_hours']}" if row["quiet_hours"] else "",
                f" silent {row['silent_hours']}" if row["silent_hours"] else "",
                " no-preview" if row["disable_link_preview"] else "",
            ]
        )
        account = f" as {row['account']}" if row["account"] else ""
        typer.echo(
            f"{row['channel']:<12} {row['chat_id']:<24} sections {','.join(row['sections'])}; "
            f"{', '.join(modes) or 'no automatic posts'}{extra}; {row['kind']}{account} via {row['via']}"
        )
    if not rows:
        typer.echo("no channels configured")


@channels_app.command("status")
def channels_status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Paused channels with the reason, posts by status, and posts needing a look."""
    from distributor.delivery.ledger import attention, channel_state, status_counts

    s = settings()
    store = open_store()
    counts = status_counts(store)
    channels = []
    for name in s.channels:
        state = channel_state(s, store, name)
        channels.append(
            {
                "channel": name,
                "chat_id": state.chat_id,
                "migrated": state.migrated,
                "paused": state.paused,
                "reason": state.reason,
                "paused_at": state.paused_at.isoformat() if state.paused_at else None,
                "posts": dict(sorted(counts.get(name, {}).items())),
            }
        )
    look = attention(store)
    if as_json:
        typer.echo(json.dumps({"channels": channels, "attention": look}, indent=2, ensure_ascii=False))
        return
    typer.echo(f"telegram: {'Bot API' if s.env.telegram_bot_token else 'outbox files (no TELEGRAM_BOT_TOKEN)'}")
    for row in channels:
        state = f"PAUSED since {row['paused_at']}: {row['reason']}" if row["paused"] else "active"
        moved = " (moved by Telegram)" if row["migrated"] else ""
        posts = ", ".join(f"{k} {v}" for k, v in row["posts"].items()) or "no posts"
        typer.echo(f"{row['channel']:<12} {row['chat_id']}{moved}  {state}\n{'':13}{posts}")
    if look:
        typer.echo("\nneeds a look (unknown = maybe posted, never resent automatically):")
        for item in look:
            plain = " [sent as plain text]" if item["plain_text"] else ""
            plain += " [photo refused: posted as text]" if item["photo_error"] else ""
            typer.echo(f"  {item['channel']:<12} {item['status']:<8} {item['target']}{plain}  {item['error']}")


@channels_app.command("test")
def channels_test(channel: str = typer.Argument(..., help="Channel name from the config.")) -> None:
    """Telegram: a short silent test message (through the rate limit; outbox without a
    token). Mastodon, Bluesky: a check of the credentials that posts nothing."""
    from distributor.delivery.telegram import send_test_message

    s = settings()
    _known(channel)
    if s.channels[channel].kind != "telegram":
        from distributor.delivery.social import check_channel

        ok, text = check_channel(s, channel)
        typer.echo(f"{channel}: {text}", err=not ok)
        if not ok:
            raise typer.Exit(1)
        return
    result, chat_id = send_test_message(s, open_store(), channel)
    if result.ok:
        typer.echo(f"{channel}: test message sent to {chat_id} (message {','.join(map(str, result.message_ids))})")
        return
    typer.echo(f"{channel}: test message failed ({result.outcome}): {result.description}", err=True)
    raise typer.Exit(1)


@channels_app.command("post")
def channels_post(
    article: str = typer.Argument(..., help="Article key or URL."),
    channel: str | None = typer.Option(None, "--channel", "-C", help="Only this channel (default: every channel carrying its section)."),
    again: bool = typer.Option(False, "--again", help="Resend a post recorded as unknown, failed or skipped (check the channel first)."),
) -> None:
    """Post one article now, to one channel or to every channel carrying its section."""
    from distributor.delivery.telegram import post_article
    from distributor.store.articles import find_article

    s = checked_settings("channels post")
    store = open_store()
    found = find_article(store, article)
    if found is None:
        typer.echo(f"no stored article has key or URL {article!r}", err=True)
        raise typer.Exit(2)
    if channel:
        _known(channel)
        names = [channel]
    else:
        names = [n for n, c in s.channels.items() if c.carries(found.section)]
        if not names:
            typer.echo(f"no channel carries section {found.section!r}", err=True)
            raise typer.Exit(2)
    failed = False
    from distributor.delivery import social

    for name in names:
        if s.channels[name].kind == "telegram":
            report = post_article(s, store, found.key, name, again=again)
        else:
            report = social.post_article(s, store, found.key, name, again=again)
        typer.echo(report.line())
        failed |= report.status in ("failed", "unknown", "deferred")
    if failed:
        raise typer.Exit(1)


@channels_app.command("resume")
def channels_resume(channel: str = typer.Argument(..., help="Channel name from the config.")) -> None:
    """Unpause a channel paused after a permanent error (once the bot can post there again)."""
    from distributor.delivery.ledger import resume_channel

    settings()
    _known(channel)
    if resume_channel(open_store(), channel):
        typer.echo(f"{channel}: resumed")
    else:
        typer.echo(f"{channel}: was not paused")
