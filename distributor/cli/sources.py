"""`distributor sources`: the health of every feed, as the pipeline recorded it."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import typer

from distributor.cli.core import app, open_store, settings
from distributor.ingest.health import SourceHealth, source_health

_HEADER = ("SOURCE", "STATUS", "LAST POLL", "HTTP", "NEW 24H", "UPD 24H", "NEXT POLL")


@app.command()
def sources(as_json: bool = typer.Option(False, "--json")) -> None:
    """Each source: location, poll interval, last poll and HTTP status, last error, articles
    new and updated in the last 24 h, next poll (times in the site timezone)."""
    s = settings()
    now = datetime.now(timezone.utc)
    health = source_health(s, open_store(), now)
    if as_json:
        typer.echo(json.dumps([h.as_dict() for h in health], indent=2))
        return
    if not health:
        typer.echo("no sources configured")
        return
    for line in render_table(health, s.tz):
        typer.echo(line)


def render_table(health: list[SourceHealth], tz) -> list[str]:  # noqa: ANN001 - tzinfo
    """The human table: one row per source, then its location and its last error."""

    def when(value: datetime | None) -> str:
        return value.astimezone(tz).strftime("%Y-%m-%d %H:%M") if value else "-"

    rows = [_HEADER]
    details: list[list[str]] = []
    for h in health:
        if h.status == "error":
            status = f"FAILING x{h.failures_in_a_row}"
        else:
            status = {"ok": "ok", "not_modified": "ok (304)", "never": "never polled"}.get(h.status, h.status)
        if h.due:
            next_poll = "due"
        elif h.next_poll_at is None:
            next_poll = "disabled" if h.configured else "by hand"
        else:
            next_poll = when(h.next_poll_at)
        rows.append(
            (
                h.name, status, when(h.last_polled_at), str(h.http_status or "-"),
                str(h.new_24h), str(h.updated_24h), next_poll,
            )
        )
        every = f"every {h.poll_minutes} min" if h.configured else "not in the config file"
        lines = [f"  {h.location} ({every})"]
        if h.last_error:
            recovered = "" if h.failing else ", since recovered"
            lines.append(f"  last error {when(h.last_error_at)}{recovered}: {h.last_error}")
        details.append(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    # Counts right-aligned, text left-aligned.
    right = {3, 4, 5}

    def line(row: tuple[str, ...]) -> str:
        cells = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    out = [line(rows[0])]
    for row, extra in zip(rows[1:], details):
        out.append(line(row))
        out.extend(extra)
    out.append(f"(times in {getattr(tz, 'key', str(tz))})")
    return out
