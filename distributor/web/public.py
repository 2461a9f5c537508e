"""The reader-facing pages: subscribe, confirm, preferences, unsubscribe, archive.

Rules these routes keep:
- no login and no cookies: every page that acts on a subscription is reached through a
  signed link from an email (see distributor.subscribers for the tokens);
- a GET never changes a subscription. Mail security scanners fetch every link in a
  message, so a GET that unsubscribed (or confirmed) would act without the reader:
  GET shows a page with a button, POST acts;
- POST /unsubscribe/{token} is the RFC 8058 one-click target: it accepts any body
  (clients send `List-Unsubscribe=One-Click`), needs no cookie, is idempotent and answers
  200 without a redirect;
- a forged, expired or wrong-purpose link gets a 400 page naming the problem, and
  changes nothing;
- subscribe answers the same "check your inbox" whether or not the address was already
  on the list, so the form cannot be used to learn who subscribes.

The app must set `app.state.settings` and `app.state.store` (create_app does). The
subscribe rate limiter is made on first use from settings (Redis when REDIS_URL is set)
and kept in `app.state.rate_limiter`; tests may put their own there. Signups are queued
through `app.state.on_signup` when set (a Celery task), else on this process's
background `SignupQueue` (`app.state.signup_queue`, made on first use).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Callable
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import exists, func, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from distributor import jsonlimits
from distributor import subscribers as subs
from distributor.settings import PROJECT_ROOT, Settings
from distributor.signups import Signup, SignupQueue
from distributor.store import Store
from distributor.store.models import MAX_ID, DeliveryRow, EditionRunRow
from distributor.text import clusters, shorten
from distributor.web import openapi
from distributor.web.ratelimits import MemoryRateLimiter, RateLimiter, RedisRateLimiter, mailbox_key, network_key

log = logging.getLogger(__name__)

router = APIRouter()

TEMPLATES_DIR = PROJECT_ROOT / "templates" / "web"

# Marks a form that shows the preference fields, so "no box ticked" can be told apart
# from a minimal form (email only) that wants the defaults.
PREFS_MARKER = "_prefs"


# --- rate limits ---------------------------------------------------------------------------


def rate_limiter(request: Request) -> RateLimiter:
    """The app's limiter, made on first use (Redis when REDIS_URL is set)."""
    state = request.app.state
    limiter = getattr(state, "rate_limiter", None)
    if limiter is None:
        with _STATE_LOCK:
            limiter = getattr(state, "rate_limiter", None)
            if limiter is None:
                settings: Settings = state.settings
                limiter = RedisRateLimiter(settings.redis_url) if settings.redis_url else MemoryRateLimiter()
                state.rate_limiter = limiter
    return limiter


_STATE_LOCK = threading.Lock()


def client_ip(request: Request) -> str:
    """The client's address as the server saw it (uvicorn applies X-Forwarded-For from
    trusted proxies, FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else "unknown"


# --- pages -----------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _environment(directory: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(directory),
        autoescape=True,  # everything: addresses, names and titles come from outside
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Links carry tokens in their path: never hand them on to another site.
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
}


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _store(request: Request) -> Store:
    return request.app.state.store


def _page(request: Request, template: str, status: int = 200, *, private: bool = False, **context: Any) -> HTMLResponse:
    """A page from templates/web/. `private` pages (reached by a personal link) are never
    cached or indexed."""
    settings = _settings(request)
    body = _environment(str(TEMPLATES_DIR)).get_template(template).render(
        site=settings.site, archive_enabled=settings.file.web.archive, **context
    )
    response = HTMLResponse(body, status_code=status, headers=_SECURITY_HEADERS)
    if private:
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _error(request: Request, status: int, title: str, message: str, *, as_json: bool = False) -> Response:
    if as_json:
        return JSONResponse({"error": message}, status_code=status)
    return _page(request, "error.html", status, private=True, title=title, message=message)


def _token_error(request: Request, exc: subs.TokenError, *, as_json: bool = False) -> Response:
    titles = {
        "forged": "This link is not valid",
        "malformed": "This link is damaged",
        "expired": "This link has expired",
        "wrong_purpose": "This link is for something else",
        "stale": "This address is not on our list",
        "superseded": "This link has been replaced",
    }
    if as_json:
        return JSONResponse({"error": exc.message, "problem": exc.problem}, status_code=400)
    return _page(request, "error.html", 400, private=True, title=titles.get(exc.problem, "Invalid link"), message=exc.message, problem=exc.problem)


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _masked(email: str) -> str:
    """r***@example.com: enough for a reader to recognise, little for anyone else."""
    local, _, domain = email.partition("@")
    return f"{next(clusters(local), '')}***@{domain}"


# --- request bodies ---------------------------------------------------------------------------


class _BodyTooLarge(Exception):
    pass


class _BadBody(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def _form_or_json(request: Request, limit: int) -> tuple[dict[str, Any], bool]:
    """The submitted fields and whether they came as JSON. Form lists (checkboxes) come
    back as lists; a form that shows the preference boxes yields [] when none is ticked."""
    body = await _read_body(request, limit)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json" or (kind.endswith("+json")):
        try:
            data = jsonlimits.loads(body or b"null")
        except jsonlimits.JsonBodyError as exc:
            raise _BadBody(str(exc)) from None
        if not isinstance(data, dict):
            raise _BadBody("expected a JSON object")
        return data, True
    if kind == "multipart/form-data":

        async def receive() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        form: FormData = await Request(request.scope, receive).form(max_files=0, max_fields=200)
        pairs = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    else:
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
        except (UnicodeDecodeError, ValueError):
            raise _BadBody("the form is not valid UTF-8 form data") from None
    fields: dict[str, Any] = {}
    for key, value in pairs:
        if key in ("sections", "editions"):
            fields.setdefault(key, []).append(value)
        else:
            fields[key] = value
    if PREFS_MARKER in fields:
        fields.setdefault("sections", [])
        fields.setdefault("editions", [])
    return fields, False


def _text(fields: dict, key: str) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise subs.InvalidPreference(key, "expected text")
    return value


def _choice(fields: dict, key: str) -> list[str] | str | None:
    value = fields.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise subs.InvalidPreference(key, "expected a list of names")


# --- form contexts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Option:
    value: str
    label: str
    checked: bool


def _options(settings: Settings, sections: Any, editions: Any) -> dict:
    chosen_sections = set(sections) if isinstance(sections, (list, tuple)) else None
    chosen_editions = set(editions) if isinstance(editions, (list, tuple)) else None
    defaults = set(subs.default_editions(settings))
    return {
        "section_options": [
            _Option(s.slug, s.label, chosen_sections is None or s.slug in chosen_sections) for s in settings.sections
        ],
        "edition_options": [
            _Option(name, config.label, (name in chosen_editions) if chosen_editions is not None else name in defaults)
            for name, config in settings.editions.items()
            if config.kind == "digest"
            and (not config.paused or (chosen_editions is not None and name in chosen_editions))
        ],
        "local_time": any(config.local_time for config in settings.editions.values()),
    }


@lru_cache(maxsize=1)
def _zones() -> tuple[str, ...]:
    from zoneinfo import available_timezones

    return tuple(sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/"))))


def _subscribe_form(request: Request, status: int = 200, *, values: dict | None = None, error: Any = None) -> HTMLResponse:
    settings = _settings(request)
    values = values or {}
    return _page(
        request,
        "subscribe.html",
        status,
        values={
            "email": values.get("email") or "",
            "name": values.get("name") or "",
            "format": values.get("format") or "html",
            "timezone": values.get("timezone") or settings.site.timezone,
        },
        error=error,
        honeypot=settings.file.web.honeypot_field,
        prefs_marker=PREFS_MARKER,
        zones=_zones(),
        **_options(settings, values.get("sections"), values.get("editions")),
    )


# --- subscribe -------------------------------------------------------------------------------


@router.get("/subscribe", response_class=HTMLResponse)
def subscribe_page(request: Request, email: str = "") -> HTMLResponse:
    """The subscribe form."""
    return _subscribe_form(request, values={"email": shorten(email, 320, ellipsis="", prefer_words=False)})


@dataclass(frozen=True)
class _FieldError:
    field: str
    message: str


def _check_inbox(request: Request, as_json: bool) -> Response:
    message = "Check your inbox: we sent a link to confirm your subscription. It is valid for " f"{_settings(request).file.web.confirm_max_age_hours} hours."
    if as_json:
        return JSONResponse({"status": "check_inbox", "message": message})
    return _page(request, "check_inbox.html", message=message)


def _too_many(request: Request, retry_after: int, as_json: bool) -> Response:
    message = "Too many subscribe attempts. Please try again later."
    headers = {"Retry-After": str(retry_after)}
    if as_json:
        return JSONResponse({"error": message, "retry_after": retry_after}, status_code=429, headers=headers)
    response = _page(request, "error.html", 429, title="Too many attempts", message=message)
    response.headers.update(headers)
    return response


@router.post("/subscribe", openapi_extra=openapi.body(openapi.SUBSCRIBE, form=True))
async def subscribe_submit(request: Request) -> Response:
    """Subscribe from the form or JSON: validate, rate limit, queue the signup (stored as
    pending and mailed its confirmation link after the answer); answers "check your inbox",
    the same for every address, whatever its state."""
    settings = _settings(request)
    web = settings.file.web
    as_json = "json" in request.headers.get("content-type", "")
    try:
        fields, as_json = await _form_or_json(request, web.max_body_bytes)
    except _BodyTooLarge:
        return _error(request, 413, "Too large", "The form is larger than we accept.", as_json=as_json)
    except _BadBody as exc:
        return _error(request, 400, "Bad request", str(exc), as_json=as_json)

    limiter = rate_limiter(request)
    network = network_key(client_ip(request), ipv6_prefix=web.subscribe_ipv6_prefix)
    wait = limiter.hit(network, web.subscribe_per_ip, web.subscribe_ip_window_seconds)
    if wait is not None:
        return _too_many(request, wait, as_json)

    trap = fields.get(web.honeypot_field)
    if trap:  # a person never sees the field; answer as if all went well, store nothing
        log.info("subscribe honeypot filled; ignored", extra={"ip": client_ip(request)})
        return _check_inbox(request, as_json)

    def invalid(field_name: str, message: str) -> Response:
        if as_json:
            return JSONResponse({"error": message, "field": field_name}, status_code=400)
        return _subscribe_form(request, 400, values=fields, error=_FieldError(field_name, message))

    try:
        email = _text(fields, "email") or ""
        address = subs.normalise_address(email)
        prefs = subs.check_preferences(
            settings,
            sections=_choice(fields, "sections"),
            editions=_choice(fields, "editions"),
            timezone=_text(fields, "timezone"),
            format=_text(fields, "format"),
            name=_text(fields, "name"),
        )
    except subs.InvalidAddress as exc:
        return invalid("email", exc.reason)
    except subs.InvalidPreference as exc:
        return invalid(exc.field, str(exc))

    inbox = mailbox_key(address, tag_separator=web.mailbox_tag_separator, dotless_domains=tuple(web.mailbox_dotless_domains))
    wait = limiter.hit(inbox, web.subscribe_per_address, web.subscribe_address_window_seconds)
    if wait is not None:
        return _too_many(request, wait, as_json)

    signup = Signup(address, prefs.sections, prefs.editions, prefs.timezone, prefs.format, prefs.name)
    try:
        # Storing and mailing happen after this answer (see distributor.signups): what the
        # address's state would change - a row, a mail, a slow SMTP server - never shows here.
        queue_signup(request.app)(signup)
    except Exception as exc:  # noqa: BLE001 - the broker is away: the same answer for everyone
        log.error("subscribe: could not queue the signup (%s)", type(exc).__name__)
        return _error(
            request,
            503,
            "Please try again",
            "We could not take your subscription just now. Please try again in a few minutes.",
            as_json=as_json,
        )
    return _check_inbox(request, as_json)


def queue_signup(app) -> Callable[[Signup], None]:  # noqa: ANN001 - a FastAPI app
    """The app's way to queue a signup: `app.state.on_signup` (a Celery task, set by
    create_app when there is a broker), else this process's background SignupQueue."""
    hook = getattr(app.state, "on_signup", None)
    return hook if hook is not None else signup_queue(app).put


def signup_queue(app) -> SignupQueue:  # noqa: ANN001 - a FastAPI app
    """The app's background SignupQueue, made on first use."""
    state = app.state
    with _STATE_LOCK:
        found = getattr(state, "signup_queue", None)
        if found is None:
            found = state.signup_queue = SignupQueue(state.settings, state.store)
    return found


# --- confirm ----------------------------------------------------------------------------------


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, token: str) -> Response:
    """Shows a "Confirm" button: scanners that fetch links must not confirm for the reader."""
    try:
        subscriber = subs.check_confirm_token(_settings(request), _store(request), token)
    except subs.TokenError as exc:
        return _token_error(request, exc)
    if subscriber.status == "confirmed":
        return _confirmed(request, subscriber, already=True)
    return _page(request, "confirm.html", private=True, email=_masked(subscriber.email), action=f"/confirm/{token}")


@router.post("/confirm/{token}", response_class=HTMLResponse)
def confirm_submit(request: Request, token: str) -> Response:
    """Confirms the subscription the link was mailed for; idempotent."""
    settings = _settings(request)
    try:
        subscriber, changed = subs.confirm_with_token(settings, _store(request), token)
    except subs.TokenError as exc:
        return _token_error(request, exc, as_json=_wants_json(request))
    if changed:
        try:
            subs.send_welcome(settings, subscriber)
        except Exception:  # noqa: BLE001 - the subscription stands even if its welcome fails
            log.exception("welcome email failed", extra={"subscriber": subscriber.id})
    if _wants_json(request):
        return JSONResponse({"status": "confirmed", "changed": changed})
    return _confirmed(request, subscriber, already=not changed)


def _confirmed(request: Request, subscriber: subs.Subscriber, *, already: bool) -> HTMLResponse:
    settings = _settings(request)
    return _page(
        request,
        "confirmed.html",
        private=True,
        already=already,
        preferences_url=subs.preferences_url(settings, subscriber.id, subscriber.email),
    )


# --- preferences -----------------------------------------------------------------------------


def _preferences_page(
    request: Request, subscriber: subs.Subscriber, token: str, status: int = 200, *, values: dict | None = None, error: Any = None, saved: bool = False
) -> HTMLResponse:
    settings = _settings(request)
    values = values or {
        "sections": list(subscriber.sections) if subscriber.sections is not None else None,
        "editions": list(subscriber.wanted_editions(settings)),
        "timezone": subscriber.timezone,
        "format": subscriber.format,
        "name": subscriber.name,
    }
    return _page(
        request,
        "preferences.html",
        status,
        private=True,
        email=subscriber.email,
        status_name=subscriber.status,
        active=subscriber.status in ("pending", "confirmed"),
        values={
            "name": values.get("name") or "",
            "format": values.get("format") or "html",
            "timezone": values.get("timezone") or settings.site.timezone,
        },
        zones=_zones(),
        error=error,
        saved=saved,
        action=f"/preferences/{token}",
        unsubscribe_action="/unsubscribe/" + subs.make_token(settings, "unsubscribe", subscriber.id, subscriber.email),
        prefs_marker=PREFS_MARKER,
        **_options(settings, values.get("sections"), values.get("editions")),
    )


@router.get("/preferences/{token}", response_class=HTMLResponse)
def preferences_page(request: Request, token: str) -> Response:
    """The reader's preferences, prefilled; reached from the link in every email."""
    try:
        subscriber = subs.subscriber_for_token(_settings(request), _store(request), "preferences", token)
    except subs.TokenError as exc:
        return _token_error(request, exc)
    return _preferences_page(request, subscriber, token)


@router.post("/preferences/{token}", openapi_extra=openapi.body(openapi.PREFERENCES, form=True))
async def preferences_submit(request: Request, token: str) -> Response:
    """Save the preferences form (or JSON with the same fields); the status never changes."""
    settings = _settings(request)
    store = _store(request)
    try:
        subscriber = await run_in_threadpool(subs.subscriber_for_token, settings, store, "preferences", token)
    except subs.TokenError as exc:
        return _token_error(request, exc, as_json=_wants_json(request))
    try:
        fields, as_json = await _form_or_json(request, settings.file.web.max_body_bytes)
    except _BodyTooLarge:
        return _error(request, 413, "Too large", "The form is larger than we accept.")
    except _BadBody as exc:
        return _error(request, 400, "Bad request", str(exc))
    changes: dict[str, Any] = {}
    try:
        for key in ("sections", "editions"):
            if key in fields:
                changes[key] = _choice(fields, key)
        for key in ("timezone", "format", "name"):
            if key in fields:
                changes[key] = _text(fields, key)
        updated = await run_in_threadpool(lambda: subs.set_preferences(settings, store, subscriber.id, **changes))
    except subs.InvalidPreference as exc:
        if as_json:
            return JSONResponse({"error": str(exc), "field": exc.field}, status_code=400)
        return _preferences_page(request, subscriber, token, 400, values=fields, error=_FieldError(exc.field, str(exc)))
    if as_json:
        return JSONResponse({"status": "saved", "subscriber": _public_view(updated)})
    return _preferences_page(request, updated, token, saved=True)


def _public_view(s: subs.Subscriber) -> dict:
    view = s.as_dict()
    for key in ("id", "created_at", "source"):
        view.pop(key, None)
    return view


# --- generic pages (the archive's links, and anyone who lost their personal link) ----------------


@router.get("/unsubscribe", response_class=HTMLResponse)
@router.get("/preferences", response_class=HTMLResponse)
def manage_page(request: Request) -> HTMLResponse:
    """Where the archive's (impersonal) unsubscribe and preferences links lead."""
    return _page(request, "manage.html")


# --- unsubscribe -------------------------------------------------------------------------------


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str) -> Response:
    """A page with an Unsubscribe button. Never unsubscribes by itself."""
    try:
        subscriber = subs.subscriber_for_token(_settings(request), _store(request), "unsubscribe", token)
    except subs.TokenError as exc:
        if exc.problem == "stale":
            return _page(request, "unsubscribed.html", private=True, not_on_list=True, already=True)
        return _token_error(request, exc)
    if subscriber.status not in ("pending", "confirmed"):
        return _page(request, "unsubscribed.html", private=True, not_on_list=False, already=True)
    return _page(request, "unsubscribe.html", private=True, email=_masked(subscriber.email), action=f"/unsubscribe/{token}")


@router.post("/unsubscribe/{token}")
def unsubscribe_submit(request: Request, token: str) -> Response:
    """Unsubscribe (RFC 8058 one-click target): any body, no cookie, idempotent, 200."""
    # The body (`List-Unsubscribe=One-Click` from mail clients, or our form's button) is
    # deliberately not read: the signed token is the whole authority.
    settings = _settings(request)
    as_json = _wants_json(request)
    try:
        subscriber = subs.subscriber_for_token(settings, _store(request), "unsubscribe", token)
    except subs.TokenError as exc:
        if exc.problem == "stale":
            # The address is not on the list: what the reader asked for already holds.
            if as_json:
                return JSONResponse({"status": "unsubscribed", "changed": False})
            return _page(request, "unsubscribed.html", private=True, not_on_list=True, already=True)
        return _token_error(request, exc, as_json=as_json)
    _, changed = subs.unsubscribe(_store(request), subscriber.id)
    if as_json:
        return JSONResponse({"status": "unsubscribed", "changed": changed})
    return _page(
        request,
        "unsubscribed.html",
        private=True,
        not_on_list=False,
        already=not changed,
        preferences_url=subs.preferences_url(settings, subscriber.id, subscriber.email),
    )


# --- archive -----------------------------------------------------------------------------------


def _sent_runs(page: int, size: int):  # noqa: ANN202 - a Select
    sent = exists().where(DeliveryRow.run_id == EditionRunRow.id, DeliveryRow.status == "sent")
    return (
        select(EditionRunRow)
        .where(sent)
        .order_by(EditionRunRow.slot.desc(), EditionRunRow.id.desc())
        .offset((page - 1) * size)
        .limit(size + 1)  # one more tells whether there is a next page
    )


@dataclass(frozen=True)
class _ArchiveEntry:
    id: int
    label: str
    date: str
    articles: int


@router.get("/archive", response_class=HTMLResponse)
def archive_page(request: Request, page: int = 1) -> Response:
    """Sent edition runs, newest first."""
    settings = _settings(request)
    if not settings.file.web.archive:
        return _error(request, 404, "Not found", "There is no archive on this site.")
    page = max(1, min(page, 100_000))
    size = settings.file.web.archive_page_size
    with _store(request).session() as session:
        rows = list(session.scalars(_sent_runs(page, size)))
    entries = [
        _ArchiveEntry(
            id=row.id,
            label=settings.editions[row.edition].label if row.edition in settings.editions else row.edition.title(),
            date=_local(row.slot, row.timezone or settings.site.timezone),
            articles=len(row.article_keys or ()),
        )
        for row in rows[:size]
    ]
    return _page(
        request,
        "archive.html",
        entries=entries,
        page=page,
        previous_page=page - 1 if page > 1 else None,
        next_page=page + 1 if len(rows) > size else None,
    )


def _local(moment: datetime, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo(zone)).strftime("%d %B %Y, %H:%M %Z").lstrip("0")


@router.get("/archive/{run_id}", response_class=HTMLResponse)
def archive_issue(request: Request, run_id: int) -> Response:
    """One sent issue as the email's HTML, with every section and no personal links."""
    settings = _settings(request)
    store = _store(request)
    if not settings.file.web.archive:
        return _error(request, 404, "Not found", "There is no archive on this site.")
    if not 1 <= run_id <= MAX_ID:
        return _error(request, 404, "Not found", f"No sent edition has the number {run_id}.")
    with store.session() as session:
        sent = session.scalar(
            select(func.count()).select_from(DeliveryRow).where(DeliveryRow.run_id == run_id, DeliveryRow.status == "sent")
        )
    if not sent:
        return _error(request, 404, "Not found", f"No sent edition has the number {run_id}.")
    cache: _ArchiveCache = getattr(request.app.state, "archive_cache", None) or _ArchiveCache()
    request.app.state.archive_cache = cache
    html = cache.get(run_id)
    if html is None:
        html = render_archived(settings, store, run_id)
        cache.put(run_id, html)
    return HTMLResponse(html, headers=_SECURITY_HEADERS)


class _ArchiveCache:
    """Rendered archive pages for a short while: rendering inlines CSS (~85 ms), and a
    popular issue should not cost that per visit. Short-lived so corrections show."""

    SIZE = 32
    SECONDS = 600

    def __init__(self, clock=time.monotonic) -> None:  # noqa: ANN001
        self._clock = clock
        self._pages: dict[int, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def get(self, run_id: int) -> str | None:
        with self._lock:
            found = self._pages.get(run_id)
            if found is None or found[0] <= self._clock():
                self._pages.pop(run_id, None)
                return None
            return found[1]

    def put(self, run_id: int, html: str) -> None:
        with self._lock:
            if len(self._pages) >= self.SIZE:
                self._pages.pop(min(self._pages, key=lambda k: self._pages[k][0]))
            self._pages[run_id] = (self._clock() + self.SECONDS, html)


def render_archived(settings: Settings, store: Store, run_id: int) -> str:
    """The HTML of a sent run as archived: every section, nothing personal (no greeting,
    footer or reader's links), a subscribe box."""
    from distributor.engine import issue_of
    from distributor.render.email import fill_html, render_variant
    from distributor.runs import get_run

    run = get_run(store, run_id)
    issue = issue_of(settings, store, run)
    # The window's end stands in for "now": it only dates the (unused) Date header, and
    # keeps the page the same on every visit.
    variant = render_variant(settings, issue, sections=None, run_id=run.id, now=run.window.end, archive=True)
    return fill_html(variant, None)
