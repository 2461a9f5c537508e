"""Subscribers: opt-in, preferences, suppression, and the signed links in every email.

States::

    pending --confirm--> confirmed --unsubscribe--> unsubscribed
       |                     |                         |
       +---------------------+--- bounced / complained (suppressed)
    unsubscribed, bounced, complained --subscribe--> pending (confirmation again)

Only `confirmed` subscribers receive editions. Nobody is confirmed without proof: a
reader clicks the signed link we mailed (double opt-in), or an operator vouches for a
list that opted in elsewhere (`add --confirmed`, `import --confirmed`). An operator's word
never overrides a reader's own unsubscribe or a suppression: such addresses go back to
pending and get a confirmation email.

Tokens (itsdangerous, HMAC-SHA256 with SECRET_KEY, one salt per purpose) carry the
subscriber id and a keyed fingerprint of the address, not the address itself: links end
up in proxy logs and browser histories, and a fingerprint binds the token to the address
without disclosing it. A token for a deleted subscriber, or for a row whose id was later
reused by another address, therefore applies to nobody. Confirm tokens are timed and
expire (WebConfig.confirm_max_age_hours); unsubscribe and preference tokens never expire,
since an email from last year must still let its reader leave, and so carry no time at
all: the same reader gets the same link in every email, which keeps rendering
deterministic and lets the dispatch stage make them cheaply per recipient.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator, Literal, Sequence, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from itsdangerous import BadData, BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer
from itsdangerous.timed import TimestampSigner
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from distributor.errors import DistributorError, SignatureError
from distributor.settings import Settings
from distributor.store import Store
from distributor.store.models import DeliveryRow, InboundMessageRow, SubscriberEventRow, SubscriberRow
from distributor.text import shorten

log = logging.getLogger(__name__)

STATUSES = ("pending", "confirmed", "unsubscribed", "bounced", "complained")
# No mail goes to these, and only the reader's own confirmed re-subscription lifts them.
SUPPRESSED = ("bounced", "complained")
FORMATS = ("html", "text")
SOURCES = ("web", "cli", "import")

Purpose = Literal["confirm", "unsubscribe", "preferences"]
PURPOSES: tuple[Purpose, ...] = ("confirm", "unsubscribe", "preferences")

# Rows read per query when walking the whole list (export, list): never all in memory.
BATCH_SIZE = 1000


# --- errors ----------------------------------------------------------------------------


class InvalidAddress(DistributorError, ValueError):
    """An email address we will not store, with what is wrong with it."""

    def __init__(self, address: str, reason: str) -> None:
        shown = shorten(address, 80, ellipsis="...", prefer_words=False)
        super().__init__(f"{shown!r} is not a usable email address: {reason}")
        self.address = address
        self.reason = reason


class InvalidPreference(DistributorError, ValueError):
    """A preference value that is not allowed, naming the field and the bad value."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


class UnknownSubscriber(DistributorError, LookupError):
    """No subscriber has this id or address."""


class TokenError(SignatureError):
    """A signed link that we refuse. `problem` is one of: forged, expired, wrong_purpose,
    malformed, stale (the address is no longer on the list), superseded (a newer email
    replaced it). `message` is written for the reader."""

    def __init__(self, problem: str, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


# --- the value ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscriber:
    """A stored subscriber as a plain value. `sections` None = every section; `editions`
    None = the editions the config marks `default`."""

    id: int
    email: str
    status: str
    sections: tuple[str, ...] | None
    editions: tuple[str, ...] | None
    timezone: str
    format: str
    name: str
    created_at: datetime
    confirmed_at: datetime | None
    status_changed_at: datetime
    source: str = ""

    @property
    def receives_mail(self) -> bool:
        return self.status == "confirmed"

    def wanted_editions(self, settings: Settings) -> tuple[str, ...]:
        """The editions this reader gets, with the default resolved."""
        if self.editions is None:
            return default_editions(settings)
        return self.editions

    def as_dict(self) -> dict:
        """JSON-ready, for `subscribers show --json` and the web API."""
        return {
            "id": self.id,
            "email": self.email,
            "status": self.status,
            "sections": list(self.sections) if self.sections is not None else None,
            "editions": list(self.editions) if self.editions is not None else None,
            "timezone": self.timezone,
            "format": self.format,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "confirmed_at": self.confirmed_at.isoformat() if self.confirmed_at else None,
            "status_changed_at": self.status_changed_at.isoformat(),
            "source": self.source,
        }


def _value(row: SubscriberRow) -> Subscriber:
    return Subscriber(
        id=row.id,
        email=row.email,
        status=row.status,
        sections=tuple(row.sections) if row.sections is not None else None,
        editions=tuple(row.editions) if row.editions is not None else None,
        timezone=row.timezone,
        format=row.format,
        name=row.name,
        created_at=row.created_at,
        confirmed_at=row.confirmed_at,
        status_changed_at=row.status_changed_at,
        source=row.source or "",
    )


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise ValueError("naive datetime given as now")
    return now.astimezone(timezone.utc)


# --- validation (pure) -------------------------------------------------------------------


def normalise_address(raw: str) -> str:
    """The address as we store it, or InvalidAddress saying what is wrong.

    Surrounding whitespace goes; the domain is lowercased and internationalised domains
    are stored in their ASCII (punycode) form so any SMTP server accepts them; the local
    part keeps its case (RFC 5321 lets servers treat it as case-sensitive), but lookups
    ignore case so "Reader@" and "reader@" are one subscriber. Local parts with non-ASCII
    characters are refused: they need SMTPUTF8, which we do not rely on.
    """
    if not isinstance(raw, str):
        raise InvalidAddress(str(raw), "not text")
    candidate = raw.strip()
    if not candidate:
        raise InvalidAddress(raw, "it is empty")
    try:
        checked = validate_email(candidate, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(candidate, str(exc)) from None
    address = checked.ascii_email or checked.normalized
    if len(address) > 254:  # RFC 5321 path limit, after punycode
        raise InvalidAddress(candidate, "it is longer than 254 characters")
    return address


_SPLIT = re.compile(r"[\s;,]+")


def _as_list(value: str | Iterable[str] | None) -> list[str] | None:
    """Accept a list or a string separated by spaces, semicolons or commas."""
    if value is None:
        return None
    if isinstance(value, str):
        return [part for part in _SPLIT.split(value.strip()) if part]
    items: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise TypeError(f"expected text, got {type(item).__name__}")
        items += [part for part in _SPLIT.split(item.strip()) if part]
    return items


def check_sections(settings: Settings, value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """Chosen sections in configured order; None means all (and stays all when sections
    are added later, so choosing every section is stored as None)."""
    chosen = _as_list(value)
    if chosen is None:
        return None
    known = [s.slug for s in settings.sections]
    for slug in chosen:
        if slug.lower() not in known:
            raise InvalidPreference("sections", f"unknown section {slug!r} (sections: {', '.join(known)})")
    wanted = {slug.lower() for slug in chosen}
    if not wanted:
        raise InvalidPreference("sections", "choose at least one section")
    if wanted == set(known):
        return None
    return tuple(slug for slug in known if slug in wanted)


def default_editions(settings: Settings) -> tuple[str, ...]:
    """Editions a subscriber who never chose receives: those the config marks default."""
    return tuple(name for name, config in settings.editions.items() if config.default)


def email_editions(settings: Settings) -> list[str]:
    """Editions a reader can get by email: digests. A `kind = "trending"` edition is a
    Telegram "Trending now" post every few hours, not a newsletter."""
    return [name for name, config in settings.editions.items() if config.kind == "digest"]


def check_editions(settings: Settings, value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """Chosen editions in configured order; None means the config's defaults."""
    chosen = _as_list(value)
    if chosen is None:
        return None
    known = email_editions(settings)
    for name in chosen:
        if name.lower() not in known:
            raise InvalidPreference("editions", f"unknown edition {name!r} (editions: {', '.join(known)})")
    wanted = {name.lower() for name in chosen}
    if not wanted:
        raise InvalidPreference("editions", "choose at least one edition (or unsubscribe)")
    return tuple(name for name in known if name in wanted)


def check_timezone(settings: Settings, value: str | None) -> str:
    """An IANA zone name; empty or None means the site's zone."""
    if value is None or not value.strip():
        return settings.site.timezone
    name = value.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidPreference("timezone", f"{name!r} is not an IANA timezone (e.g. Asia/Kolkata, Europe/London)") from None
    return name


def check_format(value: str | None) -> str:
    if value is None or not value.strip():
        return "html"
    name = value.strip().lower()
    if name not in FORMATS:
        raise InvalidPreference("format", f"{value!r} is neither html nor text")
    return name


def check_name(value: str | None) -> str:
    """A display name for greetings: one line, at most 256 characters."""
    if value is None:
        return ""
    name = " ".join(value.split())  # CR, LF, tabs and runs of spaces become one space
    name = "".join(ch for ch in name if ch.isprintable())
    if len(name) > 256:
        raise InvalidPreference("name", "longer than 256 characters")
    return name


@dataclass(frozen=True)
class Preferences:
    """Checked preference values, ready to store."""

    sections: tuple[str, ...] | None
    editions: tuple[str, ...] | None
    timezone: str
    format: str
    name: str


def check_preferences(
    settings: Settings,
    *,
    sections: str | Iterable[str] | None = None,
    editions: str | Iterable[str] | None = None,
    timezone: str | None = None,
    format: str | None = None,  # noqa: A002 - the preference is called format
    name: str | None = None,
) -> Preferences:
    """Validate every preference; InvalidPreference names the first bad one."""
    return Preferences(
        sections=check_sections(settings, sections),
        editions=check_editions(settings, editions),
        timezone=check_timezone(settings, timezone),
        format=check_format(format),
        name=check_name(name),
    )


# --- tokens ------------------------------------------------------------------------------

_SALTS: dict[str, str] = {p: f"distributor.subscriber.{p}" for p in PURPOSES}
_TIMED: frozenset[str] = frozenset({"confirm"})


@dataclass(frozen=True)
class TokenClaim:
    """What a verified token says."""

    purpose: str
    subscriber_id: int
    fingerprint: str
    issued_at: datetime | None  # None for untimed tokens


class _ClockSigner(TimestampSigner):
    """A TimestampSigner whose clock can be set, so tests and callers pass `now`."""

    def __init__(self, *args, clock: float | None = None, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock) if self._clock is not None else super().get_timestamp()


@lru_cache(maxsize=32)
def _untimed(secret: str, purpose: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=_SALTS[purpose], signer_kwargs={"digest_method": hashlib.sha256})


def _timed(secret: str, purpose: str, clock: float | None) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        secret,
        salt=_SALTS[purpose],
        signer=_ClockSigner,
        signer_kwargs={"digest_method": hashlib.sha256, "clock": clock},
    )


def _serializer(secret: str, purpose: str, now: datetime | None):  # noqa: ANN202
    if purpose in _TIMED:
        return _timed(secret, purpose, now.timestamp() if now else None)
    return _untimed(secret, purpose)


@lru_cache(maxsize=8)
def _fingerprint_key(secret: str) -> bytes:
    # A key of its own, so the fingerprint is no signature that could be reused elsewhere.
    return hashlib.sha256(b"distributor.subscriber.fingerprint\0" + secret.encode()).digest()


def address_fingerprint(settings: Settings, email: str) -> str:
    """A keyed, case-insensitive fingerprint of an address (12 URL-safe characters).

    Keyed with SECRET_KEY so nobody can test guesses of the address against a link.
    """
    digest = hmac.new(_fingerprint_key(settings.secret_key), email.lower().encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:9]).decode()


def make_token(
    settings: Settings, purpose: Purpose, subscriber_id: int, email: str, *, now: datetime | None = None
) -> str:
    """A signed token for one purpose and one subscriber (id and address)."""
    if purpose not in _SALTS:
        raise ValueError(f"unknown token purpose {purpose!r}")
    payload = [int(subscriber_id), address_fingerprint(settings, email)]
    return _serializer(settings.secret_key, purpose, now).dumps(payload)


_NAMES = {"confirm": "a confirmation link", "unsubscribe": "an unsubscribe link", "preferences": "a preferences link"}


def read_token(
    settings: Settings, purpose: Purpose, token: str, *, now: datetime | None = None
) -> TokenClaim:
    """Verify a token made for `purpose`; TokenError says why it is refused.

    Confirm tokens expire after WebConfig.confirm_max_age_hours; the others never do.
    """
    if purpose not in _SALTS:
        raise ValueError(f"unknown token purpose {purpose!r}")
    if not isinstance(token, str) or not token or len(token) > 512:
        raise TokenError("malformed", "This link is incomplete or damaged. Copy the whole link from the email.")
    serializer = _serializer(settings.secret_key, purpose, now)
    issued_at = None
    try:
        if purpose in _TIMED:
            max_age = settings.file.web.confirm_max_age_hours * 3600
            payload, stamp = serializer.loads(token, max_age=max_age, return_timestamp=True)
            issued_at = stamp.astimezone(timezone.utc)
        else:
            payload = serializer.loads(token)
    except SignatureExpired:
        # Only confirm tokens are timed, so only they can expire.
        hours = settings.file.web.confirm_max_age_hours
        raise TokenError(
            "expired",
            f"This confirmation link has expired: it was valid for {hours} hours. "
            "Subscribe again to get a new one.",
        ) from None
    except BadSignature:
        other = _made_for(settings, token, exclude=purpose)
        if other is not None:
            raise TokenError(
                "wrong_purpose",
                f"This is {_NAMES[other]}, not {_NAMES[purpose]}: it cannot be used here.",
            ) from None
        raise TokenError(
            "forged", "This link is not valid: it was changed or was not made by us. Use the link from the email."
        ) from None
    except BadData:
        raise TokenError("malformed", "This link is incomplete or damaged. Copy the whole link from the email.") from None
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or not isinstance(payload[0], int)
        or not isinstance(payload[1], str)
    ):
        raise TokenError("malformed", "This link is incomplete or damaged. Copy the whole link from the email.")
    return TokenClaim(purpose, payload[0], payload[1], issued_at)


def _made_for(settings: Settings, token: str, *, exclude: str) -> str | None:
    """The purpose whose key signed this token, if another one did (for a clear message)."""
    for other in PURPOSES:
        if other == exclude:
            continue
        try:
            _serializer(settings.secret_key, other, None).loads(token)
        except BadData:
            continue
        return other
    return None


def _link(settings: Settings, path: str, token: str) -> str:
    return f"{settings.public_base_url}/{path}/{token}"


def confirm_url(settings: Settings, subscriber_id: int, email: str, *, now: datetime | None = None) -> str:
    """`{public_base_url}/confirm/{token}`: the double opt-in link (expires)."""
    return _link(settings, "confirm", make_token(settings, "confirm", subscriber_id, email, now=now))


def unsubscribe_url(settings: Settings, subscriber_id: int, email: str) -> str:
    """`{public_base_url}/unsubscribe/{token}`: GET shows a button, POST (RFC 8058) unsubscribes."""
    return _link(settings, "unsubscribe", make_token(settings, "unsubscribe", subscriber_id, email))


def preferences_url(settings: Settings, subscriber_id: int, email: str) -> str:
    """`{public_base_url}/preferences/{token}`: the no-login preferences page."""
    return _link(settings, "preferences", make_token(settings, "preferences", subscriber_id, email))


def subscriber_for_token(
    settings: Settings, store: Store, purpose: Purpose, token: str, *, now: datetime | None = None
) -> Subscriber:
    """Verify a token and return the subscriber it names; TokenError("stale") when that
    subscriber no longer exists or the row now belongs to another address."""
    return _claimed(settings, store, read_token(settings, purpose, token, now=now))


def _claimed(settings: Settings, store: Store, claim: TokenClaim) -> Subscriber:
    found = get(store, claim.subscriber_id)
    if found is None or not hmac.compare_digest(address_fingerprint(settings, found.email), claim.fingerprint):
        raise TokenError("stale", "This link belongs to an address that is no longer on our list.")
    return found


# --- store operations --------------------------------------------------------------------


def get(store: Store, subscriber_id: int) -> Subscriber | None:
    """The subscriber with this id, or None."""
    with store.session() as session:
        row = session.get(SubscriberRow, subscriber_id)
        return _value(row) if row is not None else None


def _row_for(session, email: str) -> SubscriberRow | None:  # noqa: ANN001
    return session.scalars(
        select(SubscriberRow).where(func.lower(SubscriberRow.email) == email.lower()).order_by(SubscriberRow.id)
    ).first()


def find(store: Store, email: str) -> Subscriber | None:
    """The subscriber with this address (any case), or None. Bad addresses find nobody."""
    try:
        address = normalise_address(email)
    except InvalidAddress:
        return None
    with store.session() as session:
        row = _row_for(session, address)
        return _value(row) if row is not None else None


def show(store: Store, email: str) -> Subscriber:
    """Like `find`, but UnknownSubscriber when nobody has the address."""
    found = find(store, email)
    if found is None:
        raise UnknownSubscriber(f"no subscriber has the address {email.strip()!r}")
    return found


def _set_status(row: SubscriberRow, status: str, now: datetime) -> None:
    row.status = status
    row.status_changed_at = now
    if status == "confirmed":
        row.confirmed_at = now


def subscribe(
    settings: Settings,
    store: Store,
    email: str,
    *,
    sections: str | Iterable[str] | None = None,
    editions: str | Iterable[str] | None = None,
    timezone: str | None = None,
    format: str | None = None,  # noqa: A002
    name: str | None = None,
    now: datetime | None = None,
    confirmed: bool = False,
    source: str = "web",
) -> tuple[Subscriber, bool]:
    """Add or re-add an address; returns (subscriber, needs_confirmation).

    - new address: pending (confirmed when `confirmed`, an operator vouching for it);
    - pending: preferences replaced, a new confirmation is due (or confirmed when `confirmed`);
    - confirmed: nothing changes. Whoever types an address into a form must not be able
      to change a reader's preferences; those change only through the preferences link;
    - unsubscribed, bounced, complained: back to pending with the new preferences and a
      confirmation is due, even when `confirmed`: only the reader lifts their own
      unsubscribe or a suppression.

    The caller sends the confirmation (see `send_confirmations`) when told to.
    """
    address = normalise_address(email)
    prefs = check_preferences(settings, sections=sections, editions=editions, timezone=timezone, format=format, name=name)
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    moment = _now(now)
    for _ in range(3):
        with store.session() as session:
            row = _row_for(session, address)
            if row is None:
                row = SubscriberRow(email=address, created_at=moment, source=source)
                _apply(row, prefs)
                _set_status(row, "confirmed" if confirmed else "pending", moment)
                session.add(row)
                try:
                    session.flush()
                except IntegrityError:
                    # Another request inserted the same address first; read theirs next pass.
                    session.rollback()
                    continue
                log.info("subscriber added", extra={"subscriber": row.id, "status": row.status, "source": source})
                return _value(row), not confirmed
            if row.status == "confirmed":
                return _value(row), False
            _apply(row, prefs)
            if row.status == "pending":
                if confirmed:
                    _set_status(row, "confirmed", moment)
                    return _value(row), False
                return _value(row), True
            previous = row.status
            _set_status(row, "pending", moment)
            row.source = source
            log.info("subscriber re-subscribing", extra={"subscriber": row.id, "was": previous, "source": source})
            return _value(row), True
    raise RuntimeError(f"could not store subscriber {address!r}")


def _apply(row: SubscriberRow, prefs: Preferences) -> None:
    row.sections = list(prefs.sections) if prefs.sections is not None else None
    row.editions = list(prefs.editions) if prefs.editions is not None else None
    row.timezone = prefs.timezone
    row.format = prefs.format
    row.name = prefs.name


def confirm(store: Store, subscriber_id: int, *, now: datetime | None = None) -> tuple[Subscriber, bool]:
    """pending -> confirmed; returns (subscriber, changed). Already confirmed: no change.

    Refuses (ValueError) to confirm an unsubscribed or suppressed subscriber: that takes
    a new subscription and its own confirmation.
    """
    moment = _now(now)
    with store.session() as session:
        row = session.get(SubscriberRow, subscriber_id)
        if row is None:
            raise UnknownSubscriber(f"no subscriber with id {subscriber_id}")
        if row.status == "confirmed":
            return _value(row), False
        if row.status != "pending":
            raise ValueError(f"subscriber {subscriber_id} is {row.status}; only a pending one can be confirmed")
        _set_status(row, "confirmed", moment)
        log.info("subscriber confirmed", extra={"subscriber": row.id})
        return _value(row), True


def check_confirm_token(
    settings: Settings, store: Store, token: str, *, now: datetime | None = None
) -> Subscriber:
    """The subscriber a confirmation link may confirm (or has confirmed), or TokenError.

    Besides forged, expired, wrong-purpose and stale links, refuses ("superseded") a link
    mailed before the subscriber's latest change of state: after unsubscribing and
    re-subscribing, only the newest confirmation email counts.
    """
    moment = _now(now)
    claim = read_token(settings, "confirm", token, now=moment)
    subscriber = _claimed(settings, store, claim)
    if subscriber.status == "confirmed":
        return subscriber
    # Token times have whole seconds; compare at that precision.
    changed_second = int(subscriber.status_changed_at.timestamp())
    if subscriber.status != "pending" or (claim.issued_at and int(claim.issued_at.timestamp()) < changed_second):
        raise TokenError(
            "superseded",
            "This confirmation link is no longer valid: the subscription changed after it was sent. "
            "Use the newest confirmation email, or subscribe again.",
        )
    return subscriber


def confirm_with_token(
    settings: Settings, store: Store, token: str, *, now: datetime | None = None
) -> tuple[Subscriber, bool]:
    """Verify a confirmation link (see `check_confirm_token`) and confirm; returns
    (subscriber, changed). A second use changes nothing."""
    moment = _now(now)
    subscriber = check_confirm_token(settings, store, token, now=moment)
    if subscriber.status == "confirmed":
        return subscriber, False
    return confirm(store, subscriber.id, now=moment)


def unsubscribe(
    store: Store, subscriber_id: int, *, now: datetime | None = None, source: str = "web", detail: dict | None = None
) -> tuple[Subscriber, bool]:
    """pending or confirmed -> unsubscribed; returns (subscriber, changed). Idempotent;
    a bounced or complained subscriber stays so (they already receive nothing). The
    change is recorded as an event from `source` ("web": the reader's own link or page;
    "operator": the CLI or the console, with who in `detail`)."""
    moment = _now(now)
    with store.session() as session:
        row = session.get(SubscriberRow, subscriber_id)
        if row is None:
            raise UnknownSubscriber(f"no subscriber with id {subscriber_id}")
        if row.status not in ("pending", "confirmed"):
            return _value(row), False
        _set_status(row, "unsubscribed", moment)
        _event(session, row.id, "unsubscribed", source, moment, detail)
        log.info("subscriber unsubscribed", extra={"subscriber": row.id})
        return _value(row), True


def _event(session, subscriber_id: int, kind: str, source: str, moment: datetime, detail: dict | None) -> None:  # noqa: ANN001
    from distributor.inbound.events import record

    record(session, subscriber_id, kind, source, now=moment, detail=detail)


def unsubscribe_address(store: Store, email: str, *, now: datetime | None = None) -> tuple[Subscriber, bool]:
    """`unsubscribe` by address; UnknownSubscriber when nobody has it."""
    return unsubscribe(store, show(store, email).id, now=now, source="operator", detail={"via": "cli"})


_UNSET = object()


def set_preferences(
    settings: Settings,
    store: Store,
    subscriber_id: int,
    *,
    sections=_UNSET,  # noqa: ANN001 - str | Iterable[str] | None
    editions=_UNSET,  # noqa: ANN001
    timezone=_UNSET,  # noqa: ANN001
    format=_UNSET,  # noqa: A002, ANN001
    name=_UNSET,  # noqa: ANN001
) -> Subscriber:
    """Change the given preferences (others untouched); the status never changes here."""
    changes: dict = {}
    if sections is not _UNSET:
        changes["sections"] = check_sections(settings, sections)
    if editions is not _UNSET:
        changes["editions"] = check_editions(settings, editions)
    if timezone is not _UNSET:
        changes["timezone"] = check_timezone(settings, timezone)
    if format is not _UNSET:
        changes["format"] = check_format(format)
    if name is not _UNSET:
        changes["name"] = check_name(name)
    with store.session() as session:
        row = session.get(SubscriberRow, subscriber_id)
        if row is None:
            raise UnknownSubscriber(f"no subscriber with id {subscriber_id}")
        for key, value in changes.items():
            setattr(row, key, list(value) if isinstance(value, tuple) else value)
        return _value(row)


def mark_bounced(
    store: Store, subscriber_id: int, *, now: datetime | None = None, source: str = "operator", detail: dict | None = None
) -> bool:
    """A permanent delivery failure (5.1.x): pending or confirmed -> bounced, so later
    runs skip the address. Returns whether anything changed. An unsubscribed or
    complained subscriber keeps that state: it already stops all mail and records more."""
    moment = _now(now)
    with store.session() as session:
        row = session.get(SubscriberRow, subscriber_id)
        if row is None or row.status not in ("pending", "confirmed"):
            return False
        _set_status(row, "bounced", moment)
        _event(session, row.id, "bounced", source, moment, detail)
        log.info("subscriber bounced", extra={"subscriber": row.id})
        return True


def mark_complained(
    store: Store, subscriber_id: int, *, now: datetime | None = None, source: str = "operator", detail: dict | None = None
) -> bool:
    """A spam complaint (feedback loop): any state -> complained. Returns whether anything
    changed. A complaint outranks everything: the reader told their provider we spam them."""
    moment = _now(now)
    with store.session() as session:
        row = session.get(SubscriberRow, subscriber_id)
        if row is None or row.status == "complained":
            return False
        _set_status(row, "complained", moment)
        _event(session, row.id, "complained", source, moment, detail)
        log.info("subscriber complained", extra={"subscriber": row.id})
        return True


def purge(store: Store, email: str) -> bool:
    """Delete the address, its deliveries and its inbound-mail evidence (an erasure
    request). Returns whether it existed.

    Links already mailed to it then apply to nobody (see `subscriber_for_token`).
    """
    address = email.strip()
    with store.session() as session:
        try:
            row = _row_for(session, normalise_address(address))
        except InvalidAddress:
            row = session.scalars(select(SubscriberRow).where(SubscriberRow.email == address)).first()
        if row is None:
            return False
        session.execute(delete(DeliveryRow).where(DeliveryRow.subscriber_id == row.id))
        # Bounce and complaint evidence quotes the address: it goes too.
        session.execute(delete(SubscriberEventRow).where(SubscriberEventRow.subscriber_id == row.id))
        session.execute(delete(InboundMessageRow).where(InboundMessageRow.subscriber_id == row.id))
        session.delete(row)
        log.info("subscriber purged", extra={"subscriber": row.id})
        return True


def iter_subscribers(
    store: Store, *, status: str | None = None, batch_size: int = BATCH_SIZE
) -> Iterator[Subscriber]:
    """Every subscriber (of one status), by id, fetched in id ranges: never all in memory."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r} (statuses: {', '.join(STATUSES)})")
    last = 0
    while True:
        query = select(SubscriberRow).where(SubscriberRow.id > last).order_by(SubscriberRow.id).limit(batch_size)
        if status is not None:
            query = query.where(SubscriberRow.status == status)
        with store.session() as session:
            rows = [_value(r) for r in session.scalars(query)]
        if not rows:
            return
        yield from rows
        last = rows[-1].id


def counts(store: Store) -> dict[str, int]:
    """Subscribers per status, every status present."""
    found = dict.fromkeys(STATUSES, 0)
    with store.session() as session:
        for status, n in session.execute(select(SubscriberRow.status, func.count()).group_by(SubscriberRow.status)):
            found[status] = n
    return found


# --- CSV ---------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "email", "status", "sections", "editions", "timezone", "format", "name",
    "created_at", "confirmed_at", "status_changed_at", "source",
)
IMPORT_COLUMNS = ("email", "sections", "editions", "timezone", "format", "name")


def _joined(values: tuple[str, ...] | None) -> str:
    return ";".join(values) if values is not None else ""


# A cell starting with one of these runs as a formula (or a DDE command) when a
# spreadsheet opens the file; tab and CR hide the character that follows from some parsers.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _guard(text: str) -> str:
    """The cell as written: a leading apostrophe makes a spreadsheet show it as text.

    Text that already reads as guarded (apostrophes, then a formula start) gets one more,
    so `_unguard` returns every value exactly: an export imports back unchanged.
    """
    return "'" + text if text.lstrip("'").startswith(_FORMULA_STARTS) else text


def _unguard(text: str) -> str:
    """The value of a cell written by `_guard` (other text is returned as it is)."""
    return text[1:] if text.startswith("'") and text.lstrip("'").startswith(_FORMULA_STARTS) else text


def export_rows(store: Store, *, status: str | None = None) -> Iterator[str]:
    """The list as CSV text, a header then one line per subscriber, produced as it is read.

    Empty sections/editions mean "all" and "the defaults", the same as on import, so an
    export can be imported elsewhere as it is (its status column carries suppressions).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def take() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(EXPORT_COLUMNS)
    yield take()
    for s in iter_subscribers(store, status=status):
        # Every cell is guarded, not only the free-text ones: an address may start with
        # "=" too, and a guard on a value that cannot need it costs nothing.
        writer.writerow(
            [
                _guard(cell)
                for cell in (
                    s.email, s.status, _joined(s.sections), _joined(s.editions), s.timezone, s.format,
                    s.name,
                    s.created_at.isoformat(), s.confirmed_at.isoformat() if s.confirmed_at else "",
                    s.status_changed_at.isoformat(), s.source or "",
                )
            ]
        )
        yield take()


def export_csv(store: Store, out: TextIO, *, status: str | None = None) -> int:
    """Write the list as CSV to `out`; returns the number of subscribers written."""
    written = -1
    for chunk in export_rows(store, status=status):
        out.write(chunk)
        written += 1
    return written


@dataclass
class ImportReport:
    """What an import did. Line numbers are the file's own (the header is line 1)."""

    added: list[str] = field(default_factory=list)
    skipped: list[tuple[int, str, str]] = field(default_factory=list)  # (line, email, why)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    confirmations: int = 0  # confirmation emails sent
    confirmation_failures: list[tuple[str, str]] = field(default_factory=list)  # (email, reply)
    fatal: str = ""  # the file could not be read at all

    @property
    def rows_read(self) -> int:
        return len(self.added) + len(self.skipped) + len(self.errors)

    @property
    def ok(self) -> bool:
        """False only when nothing could be read: no usable row, or an unreadable file."""
        return not self.fatal and (len(self.added) + len(self.skipped)) > 0

    def summary(self) -> str:
        if self.fatal:
            return f"nothing imported: {self.fatal}"
        return (
            f"{len(self.added)} added, {len(self.skipped)} skipped (already on the list), "
            f"{len(self.errors)} bad row(s), {self.confirmations} confirmation email(s) sent"
        )


@dataclass(frozen=True)
class _ImportRow:
    line: int
    email: str
    prefs: Preferences
    status: str | None  # an unsubscribed/bounced/complained status carried from an export


def _read_import(settings: Settings, text: str, report: ImportReport) -> list[_ImportRow]:
    """Parse and validate every row (pure); bad rows go to the report with their line."""
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[_ImportRow] = []
    header: list[str] | None = None
    seen: dict[str, int] = {}
    start_line = 1
    try:
        for record in reader:
            line = start_line
            start_line = reader.line_num + 1
            if not record or all(not cell.strip() for cell in record):
                continue
            if header is None:
                if "@" in record[0]:
                    header = list(IMPORT_COLUMNS)  # no header row: the documented column order
                else:
                    header = [cell.strip().lower().lstrip("\ufeff") for cell in record]
                    if "email" not in header:
                        report.fatal = f"line {line}: no 'email' column in the header ({', '.join(header)})"
                        return []
                    continue
            # Our own export guards every cell (see _guard); undo it for every column.
            cells = dict(zip(header, (_unguard(c.strip()) for c in record), strict=False))
            if len(record) > len(header):
                report.errors.append((line, f"{len(record)} fields, the header has {len(header)}"))
                continue
            try:
                address = normalise_address(cells.get("email", ""))
                prefs = check_preferences(
                    settings,
                    sections=cells.get("sections") or None,
                    editions=cells.get("editions") or None,
                    timezone=cells.get("timezone") or None,
                    format=cells.get("format") or None,
                    name=cells.get("name", ""),
                )
            except (InvalidAddress, InvalidPreference) as exc:
                report.errors.append((line, str(exc)))
                continue
            status = (cells.get("status") or "").lower() or None
            if status is not None and status not in STATUSES:
                report.errors.append((line, f"status: {status!r} is not one of {', '.join(STATUSES)}"))
                continue
            key = address.lower()
            if key in seen:
                report.errors.append((line, f"{address} repeats line {seen[key]}"))
                continue
            seen[key] = line
            rows.append(_ImportRow(line, address, prefs, status if status in ("unsubscribed", *SUPPRESSED) else None))
    except csv.Error as exc:
        report.errors.append((start_line, f"not valid CSV: {exc}"))
    return rows


# An import reports its progress as (stage, done, total): "storing" rows, then "mailing"
# confirmation emails. Called after each chunk, from the importing thread.
ImportProgress = Callable[[str, int, int], None]
IMPORT_CHUNK = 500
CONFIRMATION_BATCH = 100


def import_csv(
    settings: Settings,
    store: Store,
    path: str | Path,
    *,
    confirmed: bool,
    now: datetime | None = None,
    send: bool = True,
    progress: ImportProgress | None = None,
) -> ImportReport:
    """Import a CSV list: bad rows reported with line numbers, the rest stored.

    Columns (header row, any order; without a header, this order): email, sections,
    editions, timezone, format, name. Sections and editions are separated by spaces or
    semicolons; empty means all sections / the default editions. Extra columns are
    ignored, except `status` from our own export: unsubscribed, bounced and complained
    rows are stored in that state so a migrated list keeps its suppressions.

    Addresses already on the list are skipped and reported, never changed: the reader's
    own choices made here (preferences, an unsubscribe) outrank a list from elsewhere.
    New rows are confirmed when `confirmed` (the list opted in elsewhere), else pending,
    and each pending one is sent a confirmation email (when `send`).
    """
    report = ImportReport()
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        report.fatal = f"{path}: no such file"
        return report
    except UnicodeDecodeError as exc:
        report.fatal = f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8 CSV"
        return report
    except OSError as exc:
        report.fatal = f"{path}: {exc.strerror or exc}"
        return report
    return import_text(settings, store, text, confirmed=confirmed, now=now, send=send, progress=progress, report=report)


def decode_upload(data: bytes, name: str = "the file") -> str:
    """An uploaded CSV's text (UTF-8, a byte-order mark dropped); ValueError naming the byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name}: not UTF-8 text (byte {exc.start}); save the file as UTF-8 CSV") from None


def import_text(
    settings: Settings,
    store: Store,
    text: str,
    *,
    confirmed: bool,
    now: datetime | None = None,
    send: bool = True,
    progress: ImportProgress | None = None,
    report: ImportReport | None = None,
) -> ImportReport:
    """`import_csv` of CSV text already read (the console's uploads)."""
    report = report if report is not None else ImportReport()
    rows = _read_import(settings, text, report)
    if report.fatal:
        return report
    moment = _now(now)
    pending: list[Subscriber] = []
    if progress:
        progress("storing", 0, len(rows))
    for start in range(0, len(rows), IMPORT_CHUNK):
        chunk = rows[start : start + IMPORT_CHUNK]
        with store.session() as session:
            existing = {
                email.lower(): status
                for email, status in session.execute(
                    select(SubscriberRow.email, SubscriberRow.status).where(
                        func.lower(SubscriberRow.email).in_([r.email.lower() for r in chunk])
                    )
                )
            }
            added: list[SubscriberRow] = []
            for item in chunk:
                if item.email.lower() in existing:
                    report.skipped.append((item.line, item.email, f"already on the list ({existing[item.email.lower()]})"))
                    continue
                row = SubscriberRow(email=item.email, created_at=moment, source="import")
                _apply(row, item.prefs)
                _set_status(row, item.status or ("confirmed" if confirmed else "pending"), moment)
                if item.status:
                    row.confirmed_at = None
                session.add(row)
                added.append(row)
            session.flush()
            for row in added:
                report.added.append(row.email)
                if row.status == "pending":
                    pending.append(_value(row))
        if progress:
            progress("storing", start + len(chunk), len(rows))
    report.errors.sort()
    if send and pending:
        for start in range(0, len(pending), CONFIRMATION_BATCH):
            batch = pending[start : start + CONFIRMATION_BATCH]
            for subscriber, result in zip(batch, send_confirmations(settings, batch, now=moment), strict=True):
                if result.outcome == "sent":
                    report.confirmations += 1
                else:
                    report.confirmation_failures.append((subscriber.email, result.reply))
            if progress:
                progress("mailing", start + len(batch), len(pending))
    return report


# --- the confirmation email ----------------------------------------------------------------


def send_confirmations(settings: Settings, subscribers: Sequence[Subscriber], *, now: datetime | None = None) -> list:
    """Mail each pending subscriber their confirmation link; one SendResult per subscriber,
    in order (with send_welcome, the only functions here that send anything)."""
    from distributor.channels.contracts import Envelope
    from distributor.channels.mail import mail_channel
    from distributor.render.email import envelope_sender, render_confirmation

    moment = _now(now)
    sender = envelope_sender(settings)
    hours = settings.file.web.confirm_max_age_hours
    envelopes = [
        Envelope(
            sender=sender,
            recipient=s.email,
            data=render_confirmation(
                settings,
                email=s.email,
                confirm_url=confirm_url(settings, s.id, s.email, now=moment),
                now=moment,
                valid_hours=hours,
                name=s.name,
            ),
            ref=f"confirm-{s.id}",
        )
        for s in subscribers
    ]
    results = mail_channel(settings).send(envelopes)
    for subscriber, result in zip(subscribers, results, strict=True):
        if result.outcome != "sent":
            log.warning(
                "confirmation email not sent",
                extra={"subscriber": subscriber.id, "outcome": result.outcome, "code": result.code},
            )
    return results


def send_welcome(settings: Settings, subscriber: Subscriber, *, now: datetime | None = None):  # noqa: ANN201
    """Mail a just-confirmed subscriber what they will receive and when (`email.welcome`);
    its SendResult, or None when welcome emails are off or the reader is not confirmed."""
    from distributor.channels.contracts import Envelope
    from distributor.channels.mail import mail_channel
    from distributor.render.email import envelope_sender
    from distributor.render.welcome import render_welcome

    if not settings.file.email.welcome or not subscriber.receives_mail:
        return None
    moment = _now(now)
    data = render_welcome(
        settings,
        email=subscriber.email,
        name=subscriber.name,
        editions=subscriber.wanted_editions(settings),
        sections=subscriber.sections,
        timezone=subscriber.timezone,
        text_only=subscriber.format == "text",
        preferences_url=preferences_url(settings, subscriber.id, subscriber.email),
        unsubscribe_url=unsubscribe_url(settings, subscriber.id, subscriber.email),
        now=moment,
    )
    envelope = Envelope(sender=envelope_sender(settings), recipient=subscriber.email, data=data, ref=f"welcome-{subscriber.id}")
    [result] = mail_channel(settings).send([envelope])
    if result.outcome != "sent":
        log.warning(
            "welcome email not sent", extra={"subscriber": subscriber.id, "outcome": result.outcome, "code": result.code}
        )
    return result
