"""`distributor trending ...`: the Trending group's pins (and, later, its ranking)."""

from __future__ import annotations

import typer

from distributor.cli.core import app, open_store, settings

trending_app = typer.Typer(help="Editor pins for the Trending group.", invoke_without_command=True)
app.add_typer(trending_app, name="trending")


@trending_app.callback()
def trending(ctx: typer.Context) -> None:
    """List pins (no subcommand), or pin / unpin an article by URL or key."""
    if ctx.invoked_subcommand is None:
        _print_pins()


def _print_pins() -> None:
    from distributor.store.articles import pins

    s = settings()
    stored = pins(open_store())
    for target in s.file.trending.pins:
        typer.echo(f"{target}  (config)")
    for target in stored:
        typer.echo(f"{target}  (pinned)")
    if not stored and not s.file.trending.pins:
        typer.echo("no pins")


@trending_app.command("pin")
def trending_pin(target: str = typer.Argument(..., help="Article URL or key.")) -> None:
    """Pin an article to the top of the Trending group."""
    from distributor.store.articles import find_article, pin

    store = open_store()
    settings()
    if find_article(store, target) is None:
        typer.echo(f"note: no stored article has URL or key {target!r} yet; the pin applies when it arrives")
    typer.echo(f"pinned {target}" if pin(store, target) else f"{target} was already pinned")


@trending_app.command("unpin")
def trending_unpin(target: str = typer.Argument(..., help="Article URL or key.")) -> None:
    """Remove a pin made with `trending pin` (config pins are edited in the file)."""
    from distributor.store.articles import unpin

    settings()
    if unpin(open_store(), target):
        typer.echo(f"unpinned {target}")
    else:
        typer.echo(f"{target} was not pinned", err=True)
        raise typer.Exit(1)


@trending_app.command("pins")
def trending_pins() -> None:
    """List pins."""
    _print_pins()
