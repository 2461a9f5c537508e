"""Console sign-in: login and logout, the session cookie, roles and CSRF.

Every console route depends on `need(role)`: no session sends a browser to the login form
(and a script to a 401), a lesser role gets 403. Every POST carries the session's CSRF
token in a `csrf_token` field, checked by `form_of` before anything changes. Logins are
limited per account and per client network (the `limits` library, in Redis when REDIS_URL
is set so every web process counts together).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from datetime import timedelta
from typing import Callable
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from distributor import operators
from distributor.operators import Session
from distributor.settings import Settings
from distributor.web.admin.render import page
from distributor.web.ratelimits import network_key

log = logging.getLogger(__name__)
router = APIRouter(prefix="/admin")

COOKIE = "distributor_admin"
LOGIN_COOKIE = "distributor_login"  # double-submit CSRF token of the login form
MAX_FORM_BYTES = 2 * 1024 * 1024  # CSV imports are the largest console forms


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _secure(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/admin", httponly=True, samesite="strict", secure=_secure(request)
    )


def current(request: Request) -> Session | None:
    """The signed-in operator's session, or None."""
    if "admin_session" not in request.scope:
        settings = _settings(request)
        request.scope["admin_session"] = operators.find_session(
            request.app.state.store,
            request.cookies.get(COOKIE),
            idle=timedelta(minutes=settings.file.admin.idle_minutes),
        )
    return request.scope["admin_session"]


def _wants_json(request: Request) -> bool:
    return request.url.path.endswith(".json") or "application/json" in request.headers.get("accept", "")


class LoginRequired(Exception):
    """Raised by `need` for a browser without a session; answered with a redirect."""

    def __init__(self, target: str) -> None:
        self.target = target


def need(role: str) -> Callable[[Request], Session]:
    """A dependency: the session of an operator with at least `role`."""
    operators.check_role(role)

    def dependency(request: Request) -> Session:
        session = current(request)
        if session is None:
            if _wants_json(request):
                raise HTTPException(401, "sign in at /admin/login")
            raise LoginRequired(request.url.path)
        if not session.operator.can(role):
            raise HTTPException(403, f"this needs the {role} role; you are {session.operator.role}")
        return session

    return dependency


async def form_of(request: Request, session: Session) -> FormData:
    """The POSTed form, after its CSRF token was checked against the session's (403)."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_FORM_BYTES:
        raise HTTPException(413, f"form larger than {MAX_FORM_BYTES} bytes")
    form = await request.form()
    given = form.get("csrf_token")
    if not operators.csrf_ok(session, given if isinstance(given, str) else None):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
    return form


# --- login limits ------------------------------------------------------------------------


def client_network(request: Request) -> str:
    """The client's network for rate limits, as the public forms count it: an IPv6 /64
    (one subscriber line holds a whole /64) or an IPv4 address."""
    host = request.client.host if request.client else "unknown"
    return network_key(host, ipv6_prefix=_settings(request).file.web.subscribe_ipv6_prefix)


_LIMITER_LOCK = threading.Lock()


def limiter(request: Request) -> MovingWindowRateLimiter:
    """The console's rate limiter (shared by logins and test sends)."""
    state = request.app.state
    with _LIMITER_LOCK:
        found = getattr(state, "admin_limiter", None)
        if found is None:
            url = _settings(request).redis_url
            storage = storage_from_string(url) if url else MemoryStorage()
            found = state.admin_limiter = MovingWindowRateLimiter(storage)
    return found


def _login_allowed(request: Request, name: str) -> bool:
    config = _settings(request).file.admin
    rates = limiter(request)
    account = hashlib.sha256(name.strip().lower().encode()).hexdigest()[:24]
    per_account = RateLimitItemPerSecond(config.login_per_account, config.login_window_seconds)
    per_network = RateLimitItemPerSecond(config.login_per_ip, config.login_window_seconds)
    # Both are counted even when the first refuses, so hammering one account still costs
    # the attacker's network its budget.
    ok_account = rates.hit(per_account, "distributor:admin-login:account", account)
    ok_network = rates.hit(per_network, "distributor:admin-login:net", client_network(request))
    return ok_account and ok_network


# --- routes --------------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    # Only our own console paths: never an open redirect to another site.
    if target and target.startswith("/admin") and not target.startswith("//") and "\\" not in target:
        return target
    return "/admin"


def _login_page(request: Request, *, status: int = 200, error: str = "", name: str = "", next_path: str = "/admin") -> Response:
    token = secrets.token_urlsafe(24)
    response = page(request, "login.html", status=status, error=error, name=name, next_path=next_path, login_csrf=token, title="Sign in")
    set_cookie(request, response, LOGIN_COOKIE, token, max_age=3600)
    return response


@router.get("/login")
def login_form(request: Request, next: str = "/admin") -> Response:  # noqa: A002 - the query name
    if current(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_page(request, next_path=_safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    name = str(form.get("name") or "")[:64]
    password = str(form.get("password") or "")
    next_path = _safe_next(str(form.get("next") or ""))
    cookie_token = request.cookies.get(LOGIN_COOKIE, "")
    given = str(form.get("csrf_token") or "")
    if not cookie_token or not secrets.compare_digest(cookie_token, given):
        return _login_page(request, status=403, error="The form had expired. Please sign in again.", name=name, next_path=next_path)
    if not _login_allowed(request, name):
        log.warning("console login refused: too many attempts", extra={"network": client_network(request)})
        return _login_page(
            request, status=429, error="Too many sign-in attempts. Wait a few minutes and try again.", name=name, next_path=next_path
        )
    store = request.app.state.store
    operator = await run_in_threadpool(operators.authenticate, store, name, password)
    if operator is None:
        log.info("console login failed", extra={"operator": name.strip().lower()[:64]})
        return _login_page(request, status=401, error="Wrong name or password.", name=name, next_path=next_path)
    token = await run_in_threadpool(operators.open_session, store, operator)
    log.info("console login", extra={"operator": operator.name})
    response = RedirectResponse(next_path, status_code=303)
    set_cookie(request, response, COOKIE, token, max_age=None)  # a browser-session cookie
    response.delete_cookie(LOGIN_COOKIE, path="/admin")
    return response


@router.post("/logout")
async def logout(request: Request, session: Session = Depends(need("viewer"))) -> Response:
    await form_of(request, session)
    operators.close_session(request.app.state.store, request.cookies.get(COOKIE))
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(COOKIE, path="/admin")
    return response


def login_redirect(request: Request, exc: LoginRequired) -> Response:
    """The app's handler for LoginRequired."""
    return RedirectResponse(f"/admin/login?next={quote(exc.target)}", status_code=303)
