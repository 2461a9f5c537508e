"""How console pages are made: one Jinja environment over templates/admin/, strict
security headers, and a JSON twin for every page (Datasette's habit: `/admin/runs/7` is
the page, `/admin/runs/7.json` the same data for scripts, so the two cannot disagree)."""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from distributor.settings import PROJECT_ROOT, Settings

TEMPLATES = PROJECT_ROOT / "templates" / "admin"

# Nothing from another origin, no inline script or style: the console's own CSS and a few
# lines of its own JS, and previews in frames of its own origin.
CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' https: data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
}


def _local(moment: datetime | None, settings: Settings, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if moment is None:
        return "—"
    return moment.astimezone(settings.tz).strftime(fmt)


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds} s ago"
    if seconds < 5400:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


@lru_cache(maxsize=2)
def environment(directory: str = str(TEMPLATES)) -> Environment:
    env = Environment(
        loader=FileSystemLoader(directory),
        autoescape=True,  # titles, names and addresses all come from outside
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ago"] = _ago
    env.filters["thousands"] = lambda n: f"{int(n):,}"
    return env


def page(request: Request, template: str, *, status: int = 200, session=None, **context: Any) -> HTMLResponse:  # noqa: ANN001
    """A console page; `session` (distributor.operators.Session) fills the header."""
    settings: Settings = request.app.state.settings
    body = environment().get_template(template).render(
        site=settings.site,
        me=session.operator if session else None,
        csrf=session.csrf_token if session else "",
        path=request.url.path,
        local=lambda moment, fmt="%Y-%m-%d %H:%M": _local(moment, settings, fmt),
        refresh_seconds=settings.file.admin.refresh_seconds,
        **context,
    )
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def twin(data: Any, status: int = 200) -> JSONResponse:
    """The JSON twin of a page: the same data, deterministic (sorted keys, ISO times)."""
    text = json.dumps(data, default=_json_default, sort_keys=True, ensure_ascii=False)
    return Response(text, status_code=status, media_type="application/json", headers={"Cache-Control": "no-store"})


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
