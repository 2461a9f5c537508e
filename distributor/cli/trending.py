"""`distributor trending ...`: the trending ranking and why, and the editor's pins."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Optional

import typer

from distributor.cli.core import app, open_store, parse_time, settings

trending_app = typer.Typer(
    help="The trending ranking (scores and why) and editor pins.", invoke_without_command=True
)
app.add_typer(trending_app, name="trending")


@trending_app.callback()
def trending(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    at: Optional[str] = typer.Option(
        None, "--at", help="Score at this time: ISO 8601 (site timezone if no zone) or an age like 6h. Default: now."
    ),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Articles to list (default: trending.top)."),
    window: Optional[int] = typer.Option(
        None, "--window", min=1, help="Only articles published in the last N hours before --at."
    ),
) -> None:
    """Show the ranking with scores and why (no subcommand), or manage pins."""
    if ctx.invoked_subcommand is not None:
        return
    _print_ranking(as_json=as_json, at=at, limit=limit, window=window)


def _print_ranking(*, as_json: bool, at: str | None, limit: int | None, window: int | None) -> None:
    from distributor import trending as signals
    from distributor.editions import Window

    s = settings()
    store = open_store()
    moment = parse_time(at) if at else datetime.now(timezone.utc)
    span = Window(moment - timedelta(hours=window), moment) if window else None
    scorer = signals.scorer_for(s, store)
    ranked = signals.ranking(s, store, at=moment, limit=limit, window=span, scorer=scorer)
    pins = signals.pins_in_force(s, store)
    config = s.file.trending
    if as_json:
        payload = {
            "at": moment.isoformat(),
            "scores_in": scorer.name,
            "half_life_hours": config.half_life_hours,
            "min_score": config.min_score,
            "window_hours": window,
            "ranking": [line.as_dict() for line in ranked],
            "pins": [{"target": target, "origin": origin} for target, origin in pins],
        }
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    local = moment.astimezone(s.tz)
    typer.echo(
        f"Trending at {local:%Y-%m-%d %H:%M %Z} (scores in {scorer.name}; half-life {config.half_life_hours:g} h; "
        f"Trending groups need {config.min_score:g}+ points)"
    )
    if not ranked:
        typer.echo("  nothing yet: no clicks, page views, editor flags or pins")
    for place, line in enumerate(ranked, start=1):
        score = "pinned" if line.pinned and not line.score else f"{line.score:8.2f}"
        why = ", ".join(line.reasons) or "-"
        typer.echo(f"{place:3}. {score:>8}  {line.title or line.article_key}")
        typer.echo(f"     {'':>8}  {why}  <{line.url or line.article_key}>")
    if pins:
        typer.echo("pins:")
        for target, origin in pins:
            typer.echo(f"  {target}  ({origin})")


def _print_pins() -> None:
    from distributor import trending as signals

    s = settings()
    pins = signals.pins_in_force(s, open_store())
    for target, origin in pins:
        typer.echo(f"{target}  ({origin})")
    if not pins:
        typer.echo("no pins")


@trending_app.command("pin")
def trending_pin(target: str = typer.Argument(..., help="Article URL or key.")) -> None:
    """Pin an article to the top of every Trending group (URLs are kept in canonical form)."""
    from distributor.store.articles import find_article, pin
    from distributor.trending import pin_target

    store = open_store()
    settings()
    target = pin_target(target)
    if find_article(store, target) is None:
        typer.echo(f"note: no stored article has URL or key {target!r} yet; the pin applies when it arrives")
    typer.echo(f"pinned {target}" if pin(store, target) else f"{target} was already pinned")


@trending_app.command("unpin")
def trending_unpin(target: str = typer.Argument(..., help="Article URL or key.")) -> None:
    """Remove a pin made with `trending pin` (config pins are edited in the file)."""
    from distributor.store.articles import unpin
    from distributor.trending import pin_target

    settings()
    store = open_store()
    # Pins made before URLs were kept canonical are found as typed.
    if unpin(store, pin_target(target)) or unpin(store, target.strip()):
        typer.echo(f"unpinned {target}")
    else:
        typer.echo(f"{target} was not pinned", err=True)
        raise typer.Exit(1)


@trending_app.command("pins")
def trending_pins() -> None:
    """List pins."""
    _print_pins()
