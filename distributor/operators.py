"""Operator accounts and console sessions: who may use /admin, and as what.

Roles are ordered: a viewer reads; an editor also changes schedules, previews, sends
tests and pins; an admin also manages subscribers, channels and operators. Passwords are
hashed with argon2id (argon2-cffi's defaults, re-hashed when those get stronger). A
session is a random token in an HttpOnly cookie; the database keeps only its SHA-256, its
CSRF token and when it was last used, so logging out or an idle timeout ends it for good.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from distributor.errors import DistributorError
from distributor.store import Store
from distributor.store.models import OperatorRow, OperatorSessionRow, utcnow

ROLES = ("viewer", "editor", "admin")
# A password shorter than this is refused: the console can send mail to every reader.
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024  # argon2 takes any length; a megabyte "password" is an attack
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# A session's last_seen_at is written at most this often, not on every request.
TOUCH_EVERY = timedelta(seconds=60)

_hasher = PasswordHasher()
# Compared against when the name is unknown, so a wrong name costs as long as a wrong
# password and login timing does not tell which operators exist.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class OperatorError(DistributorError, ValueError):
    """An operator command or login that cannot be done; the message says why."""


@dataclass(frozen=True)
class Operator:
    id: int
    name: str
    role: str
    created_at: datetime
    last_login_at: datetime | None

    def can(self, role: str) -> bool:
        """True when this operator's role is `role` or above it."""
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True)
class Session:
    operator: Operator
    csrf_token: str
    token_hash: str


def _operator(row: OperatorRow) -> Operator:
    return Operator(row.id, row.name, row.role, row.created_at, row.last_login_at)


def check_name(name: str) -> str:
    name = (name or "").strip().lower()
    if not _NAME.match(name):
        raise OperatorError(
            f"operator name {name!r}: use 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise OperatorError(f"role {role!r}: must be one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise OperatorError(f"password: at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise OperatorError(f"password: at most {MAX_PASSWORD_CHARS} characters")
    return password


def add(store: Store, name: str, role: str, password: str) -> Operator:
    """Create an operator; OperatorError when the name is taken or a value is invalid."""
    row = OperatorRow(
        name=check_name(name), role=check_role(role), password_hash=_hasher.hash(check_password(password))
    )
    try:
        with store.session() as session:
            session.add(row)
            session.flush()
            return _operator(row)
    except IntegrityError:
        raise OperatorError(f"operator {row.name!r} already exists") from None


def list_all(store: Store) -> list[Operator]:
    with store.session() as session:
        return [_operator(r) for r in session.scalars(select(OperatorRow).order_by(OperatorRow.name))]


def count(store: Store) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(OperatorRow)) or 0)


def get(store: Store, name: str) -> Operator | None:
    with store.session() as session:
        row = session.scalar(select(OperatorRow).where(OperatorRow.name == name.strip().lower()))
        return _operator(row) if row else None


def remove(store: Store, name: str) -> None:
    """Delete an operator and end their sessions. The last admin cannot be removed."""
    with store.session() as session:
        row = session.scalar(select(OperatorRow).where(OperatorRow.name == name.strip().lower()))
        if row is None:
            raise OperatorError(f"no operator {name!r}")
        if row.role == "admin":
            admins = session.scalar(select(func.count()).select_from(OperatorRow).where(OperatorRow.role == "admin"))
            if admins == 1:
                raise OperatorError(f"{row.name!r} is the last admin; add another admin first")
        session.execute(delete(OperatorSessionRow).where(OperatorSessionRow.operator_id == row.id))
        session.delete(row)


def set_password(store: Store, name: str, password: str) -> None:
    """Replace an operator's password; every session of theirs ends."""
    hashed = _hasher.hash(check_password(password))
    with store.session() as session:
        row = session.scalar(select(OperatorRow).where(OperatorRow.name == name.strip().lower()))
        if row is None:
            raise OperatorError(f"no operator {name!r}")
        row.password_hash = hashed
        session.execute(delete(OperatorSessionRow).where(OperatorSessionRow.operator_id == row.id))


def set_role(store: Store, name: str, role: str) -> Operator:
    with store.session() as session:
        row = session.scalar(select(OperatorRow).where(OperatorRow.name == name.strip().lower()))
        if row is None:
            raise OperatorError(f"no operator {name!r}")
        if row.role == "admin" and role != "admin":
            admins = session.scalar(select(func.count()).select_from(OperatorRow).where(OperatorRow.role == "admin"))
            if admins == 1:
                raise OperatorError(f"{row.name!r} is the last admin")
        row.role = check_role(role)
        session.flush()
        return _operator(row)


def authenticate(store: Store, name: str, password: str, *, now: datetime | None = None) -> Operator | None:
    """The operator when name and password match, else None (same work either way)."""
    if len(password) > MAX_PASSWORD_CHARS:
        return None
    with store.session() as session:
        row = session.scalar(select(OperatorRow).where(OperatorRow.name == (name or "").strip().lower()))
        try:
            _hasher.verify(row.password_hash if row else _DUMMY_HASH, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if _hasher.check_needs_rehash(row.password_hash):
            row.password_hash = _hasher.hash(password)
        row.last_login_at = now or utcnow()
        session.flush()
        return _operator(row)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(store: Store, operator: Operator, *, now: datetime | None = None) -> str:
    """A new session for `operator`; returns the token for the cookie (never stored)."""
    token = secrets.token_urlsafe(32)
    now = now or utcnow()
    with store.session() as session:
        session.add(
            OperatorSessionRow(
                token_hash=_digest(token),
                operator_id=operator.id,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                last_seen_at=now,
            )
        )
    return token


def find_session(store: Store, token: str | None, *, idle: timedelta, now: datetime | None = None) -> Session | None:
    """The live session of this cookie token, touched; None when unknown or idle too long
    (an idle session is deleted)."""
    if not token or len(token) > 128:
        return None
    now = now or utcnow()
    digest = _digest(token)
    with store.session() as session:
        row = session.get(OperatorSessionRow, digest)
        if row is None:
            return None
        if now - row.last_seen_at > idle:
            session.delete(row)
            return None
        if now - row.last_seen_at >= TOUCH_EVERY:
            row.last_seen_at = now
        operator = session.get(OperatorRow, row.operator_id)
        if operator is None:
            return None
        return Session(_operator(operator), row.csrf_token, digest)


def close_session(store: Store, token: str | None) -> None:
    if token:
        with store.session() as session:
            session.execute(delete(OperatorSessionRow).where(OperatorSessionRow.token_hash == _digest(token)))


def prune_sessions(store: Store, *, idle: timedelta, now: datetime | None = None) -> int:
    """Delete sessions idle longer than `idle` (housekeeping); returns how many."""
    cutoff = (now or utcnow()) - idle
    with store.session() as session:
        result = session.execute(delete(OperatorSessionRow).where(OperatorSessionRow.last_seen_at < cutoff))
        return result.rowcount or 0


def csrf_ok(session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf_token.encode(), (given or "").encode())


def ensure_demo_operator(store: Store) -> tuple[str, str] | None:
    """In the zero-configuration demo, the first run creates an admin "demo" with a random
    password and returns (name, password) to print once; None when operators exist."""
    if count(store):
        return None
    password = secrets.token_urlsafe(12)
    try:
        add(store, "demo", "admin", password)
    except OperatorError:  # another process of the demo got there first
        return None
    return "demo", password
