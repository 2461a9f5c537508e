"""Typed settings: the config file plus environment overrides, one lookup order, fail fast.

Lookup order, highest first:
1. environment variables (secrets and endpoints only, see `Environment`);
2. the TOML file named by `DISTRIBUTOR_CONFIG`, else `./config/distributor.toml`, else the
   copy shipped beside the package;
3. the defaults written here.

Every model forbids unknown keys, so a misspelt key stops start-up with the file, the key
and the reason instead of being silently ignored.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone, tzinfo
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from distributor.errors import ConfigError

_log = logging.getLogger("distributor.settings")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_NAME = Path("config") / "distributor.toml"

_SLUG = re.compile(r"^[a-z][a-z0-9_-]*$")


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA timezone {name!r}") from exc
    return name


def _check_slug(value: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(f"{value!r} is not a slug (lowercase letters, digits, - and _)")
    return value


def _check_http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value.rstrip("/") + "/"


def _check_image_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+/\S*$", value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


TimezoneName = Annotated[str, AfterValidator(_check_timezone)]
Slug = Annotated[str, AfterValidator(_check_slug)]
HttpUrl = Annotated[str, AfterValidator(_check_http_url)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteConfig(_Strict):
    """The news site: who the mail and posts come from."""

    name: str = "News Arena"
    base_url: HttpUrl = "https://www.newsarenaindia.com/"
    timezone: TimezoneName = "Asia/Kolkata"
    language: str = "en"
    # Logo shown in the email masthead instead of the site's name (an https image about
    # 32 px high); "" shows the name.
    logo_url: Annotated[str, AfterValidator(lambda v: v and _check_image_url(v))] = ""
    postal_address: str = Field(min_length=1, default="News Arena India Pvt Ltd, New Delhi, India")
    fallback_section: Slug = "nation"
    trending_category: str = "Trending"


class SectionConfig(_Strict):
    """One site section. Aliases starting with `/` are URL path prefixes; others are
    feed category names (matched case-insensitively)."""

    slug: Slug
    label: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    # Most articles of this section in one variant (a reader's email, a channel's digest).
    limit: int = Field(default=8, ge=1, le=100)

    @property
    def category_aliases(self) -> tuple[str, ...]:
        return tuple(a for a in self.aliases if not a.startswith("/"))

    @property
    def path_aliases(self) -> tuple[str, ...]:
        return tuple(a for a in self.aliases if a.startswith("/"))


class SourceConfig(_Strict):
    """A feed to poll: a file path (relative to the config file) or an http(s) URL."""

    name: Slug
    url: str = Field(min_length=1)
    poll_minutes: int = Field(default=10, ge=1, le=24 * 60)
    enabled: bool = True
    # Demo feeds only: shift every item's dates by one offset so the newest item is a few
    # minutes old at ingest time. Lets the static sample fill today's editions; dates are
    # not part of an article's content hash, so re-ingesting never reports a change.
    redate: bool = False


class IngestConfig(_Strict):
    """Limits on fetching feeds from the network."""

    timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_redirects: int = Field(default=5, ge=0, le=20)
    user_agent: str = "distributor/0.1 (+https://github.com/newsroom/distributor)"
    # Hosts, IPs or CIDR networks that may be fetched even though they are loopback,
    # private or link-local. Empty by default: feeds live on the public internet.
    allow_private: tuple[str, ...] = ()
    # An update counts as significant (the article re-enters editions) when one of
    # these fields changed; other changes only bump the version.
    significant_fields: tuple[str, ...] = ("title", "standfirst", "image_url", "section")


class WebhookConfig(_Strict):
    """The CMS push endpoint."""

    max_age_seconds: int = Field(default=300, ge=10, le=3600)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)


class EditionConfig(_Strict):
    """A scheduled kind of send: when, which window, how much."""

    label: str = Field(min_length=1)
    # Cron expression in the site timezone: minute hour day-of-month month day-of-week.
    # Or leave it out and give `times` (and optionally `days`) instead.
    schedule: str = ""
    times: tuple[str, ...] = ()
    days: tuple[str, ...] = ()
    # "since_last" or a number of hours ending at the slot time.
    window: Literal["since_last"] | int = 24
    min_articles: int = Field(default=1, ge=0)
    # Most articles in one variant, Trending included, shared round-robin across the
    # reader's sections (distributor.editions.Edition.for_sections).
    max_articles: int = Field(default=40, ge=1, le=500)
    trending_limit: int = Field(default=5, ge=0, le=50)
    default: bool = False
    local_time: bool = False
    paused: bool = False
    # "digest": Trending on top, then the sections; "trending": only the Trending group
    # (the top trending_limit articles of the window by score), e.g. "Trending now" posts.
    kind: Literal["digest", "trending"] = "digest"

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from distributor.cron import validate_cron

        return validate_cron(value) if value else value

    @model_validator(mode="after")
    def _one_schedule(self) -> "EditionConfig":
        from distributor.cron import cron_from_times

        if self.schedule and self.times:
            raise ValueError("give either schedule (cron) or times/days, not both")
        if self.times:
            try:
                cron = cron_from_times(self.times, self.days)
            except ValueError as exc:
                raise ValueError(f"times/days: {exc}") from None
            # The cron form is what the scheduler stores; times/days are only shorthand.
            object.__setattr__(self, "schedule", cron)
        elif not self.schedule:
            raise ValueError("schedule (cron) or times is required")
        elif self.days:
            raise ValueError("days goes with times, not with a cron schedule")
        return self

    @model_validator(mode="after")
    def _trending_kind_has_room(self) -> "EditionConfig":
        if self.kind == "trending" and self.trending_limit < 1:
            raise ValueError('kind = "trending" shows only the Trending group: trending_limit must be at least 1')
        return self

    @field_validator("window")
    @classmethod
    def _positive_window(cls, value: str | int) -> str | int:
        if isinstance(value, int) and not 1 <= value <= 24 * 31:
            raise ValueError("window hours must be between 1 and 744")
        return value


class SchedulerConfig(_Strict):
    """The scheduler's tick: how often schedules are read and how far back it catches up."""

    # Seconds between ticks; a schedule change takes effect within one tick.
    tick_seconds: int = Field(default=30, ge=5, le=60)
    # Slots missed while the scheduler was down are still run if at most this old.
    grace_minutes: int = Field(default=120, ge=0, le=7 * 24 * 60)
    # A run whose queued work has not moved for this long is re-queued by the tick: the
    # broker may have lost it (a Redis restart without persistence). Safe to repeat,
    # because deliveries and posts are claimed in the database before sending.
    stale_after_seconds: int = Field(default=300, ge=5, le=24 * 3600)
    # A run with queued deliveries or posts, none claimed by a live sender, and no
    # outcome recorded for this many seconds lost its tasks (a Redis restart without
    # persistence): the tick queues it again. Senders stamp progress at most every
    # PROGRESS_EVERY (5 s) per run, so this must be well above that.
    stall_seconds: int = Field(default=60, ge=15, le=24 * 3600)


class CeleryConfig(_Strict):
    """The task queue's reliability timing. (Issue 5: engine.)"""

    # Longest wait Celery puts between retries of a failed task (the backoff doubles
    # from 5 s up to this).
    retry_backoff_max_seconds: int = Field(default=1800, ge=1, le=24 * 3600)
    # Redis hands a task that was taken but never acknowledged (its worker was killed)
    # to another worker after this many seconds. It must be longer than any task runs
    # and than any retry countdown, or a waiting or running task would run twice.
    visibility_timeout_seconds: int = Field(default=7200, ge=5, le=7 * 24 * 3600)

    @model_validator(mode="after")
    def _visibility_exceeds_countdown(self) -> "CeleryConfig":
        if self.visibility_timeout_seconds <= self.retry_backoff_max_seconds:
            raise ValueError(
                f"visibility_timeout_seconds ({self.visibility_timeout_seconds}) must exceed "
                f"retry_backoff_max_seconds ({self.retry_backoff_max_seconds}): Redis would hand a task "
                "waiting for its retry to a second worker"
            )
        return self


@dataclass(frozen=True, slots=True)
class DailyRange:
    """A range of local clock times, e.g. 23:00-07:00 (start included, end excluded).

    A range whose start is after its end runs over midnight.
    """

    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, moment: datetime, tz: tzinfo) -> bool:
        """Whether the aware `moment`, read on a clock in `tz`, falls inside the range."""
        local = moment.astimezone(tz).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def end_after(self, moment: datetime, tz: tzinfo) -> datetime:
        """The first end of the range after `moment` (aware, in UTC)."""
        local = moment.astimezone(tz)
        day = local.date()
        for offset in (0, 1, 2):
            candidate = datetime.combine(day + timedelta(days=offset), self.end, tzinfo=tz)
            if candidate > local:
                return candidate.astimezone(timezone.utc)
        raise AssertionError("unreachable: an end time comes within two days")


_DAILY_RANGE = re.compile(r"^\s*([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-3]):([0-5]\d)\s*$")


def parse_daily_range(value: str) -> DailyRange | None:
    """"HH:MM-HH:MM" as a DailyRange; "" means no range. Raises ValueError naming the problem."""
    if not value.strip():
        return None
    match = _DAILY_RANGE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a range of clock times like \"23:00-07:00\"")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if (h1, m1) == (h2, m2):
        raise ValueError(f"{value!r} starts and ends at the same time; leave it empty for none")
    return DailyRange(time(h1, m1), time(h2, m2))


def _check_daily_range(value: str) -> str:
    parsed = parse_daily_range(value)
    return str(parsed) if parsed else ""


DailyRangeText = Annotated[str, AfterValidator(_check_daily_range)]


ChannelKind = Literal["telegram", "mastodon", "bluesky"]


class ChannelConfig(_Strict):
    """A social channel (Telegram, Mastodon or Bluesky): where its posts go, what it
    carries, and when.

    Modes: `instant` posts each new article of the channel's sections as soon as it is
    ingested; `digests` names the editions the channel receives as one (possibly split)
    digest post on the edition's schedule. A channel may do both.
    """

    # Which network: "telegram" (the default), "mastodon" or "bluesky".
    kind: ChannelKind = "telegram"
    # Telegram only: "@username" of a public channel, or the numeric id ("-100...") of any chat.
    chat_id: str = ""
    # Telegram only: a chat for test sends of a digest from the console's preview (e.g. the
    # desk's private group), "@username" or a numeric id; empty: no test sends to this channel.
    test_chat_id: str = Field(default="", pattern=r"^$|^@[A-Za-z0-9_]{4,64}$|^-?[0-9]{1,20}$")
    # Mastodon only: the instance's address, e.g. "https://mastodon.social". The access
    # token comes from the environment: MASTODON_<NAME>_TOKEN.
    instance_url: str = ""
    # Mastodon only: public | unlisted | private | direct.
    visibility: Literal["public", "unlisted", "private", "direct"] = "public"
    # Bluesky only: the PDS to log in to. Handle and app password come from the
    # environment: BLUESKY_<NAME>_HANDLE, BLUESKY_<NAME>_APP_PASSWORD.
    service_url: str = ""
    # Bluesky only (it has no edit): what a correction does to a posted article:
    # "leave" it (the default) or "repost" (delete the post and post the article again).
    corrections: Literal["leave", "repost"] = "leave"
    # Section slugs this channel carries; empty means every section.
    sections: tuple[Slug, ...] = ()
    # Post each new article of those sections as soon as it is ingested.
    instant: bool = False
    # Editions this channel receives as a digest post (names from [editions]).
    digests: tuple[Slug, ...] = ()
    # "HH:MM-HH:MM" in the site timezone: instant posts falling inside wait and go out
    # at the end as one roundup post instead of a burst. Empty: no quiet hours.
    quiet_hours: DailyRangeText = ""
    # "HH:MM-HH:MM" in the site timezone: posts inside are sent with
    # disable_notification, so followers' phones stay silent at night. Empty: never.
    silent_hours: DailyRangeText = ""
    # Turn off Telegram's link preview under text posts (photo posts never have one).
    disable_link_preview: bool = False

    @field_validator("chat_id")
    @classmethod
    def _chat_id_form(cls, value: str) -> str:
        if value and not re.match(r"^(@[A-Za-z][A-Za-z0-9_]{3,}|-?\d+)$", value):
            raise ValueError(f"{value!r} is neither @username nor a numeric chat id")
        return value

    @field_validator("instance_url", "service_url")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return _check_http_url(value).rstrip("/") if value else value

    @model_validator(mode="after")
    def _kind_keys(self) -> "ChannelConfig":
        # Each kind names its destination its own way; a key of another kind is a mistake.
        if self.kind == "telegram" and not self.chat_id:
            raise ValueError("chat_id: required for a telegram channel")
        if self.kind != "telegram" and self.chat_id:
            raise ValueError(f"chat_id: only for telegram channels (this one is {self.kind})")
        if self.kind == "mastodon" and not self.instance_url:
            raise ValueError("instance_url: required for a mastodon channel")
        if self.kind != "mastodon" and self.instance_url:
            raise ValueError(f"instance_url: only for mastodon channels (this one is {self.kind})")
        if self.kind != "bluesky" and self.service_url:
            raise ValueError(f"service_url: only for bluesky channels (this one is {self.kind})")
        return self

    @property
    def destination(self) -> str:
        """Where the channel posts, for people: the chat, the instance or the PDS."""
        return {"telegram": self.chat_id, "mastodon": self.instance_url}.get(self.kind) or self.service

    @property
    def service(self) -> str:
        """The Bluesky PDS address (bsky.social unless `service_url` says otherwise)."""
        return self.service_url or "https://bsky.social"

    @field_validator("sections", "digests")
    @classmethod
    def _no_repeats(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        repeated = sorted({v for v in value if value.count(v) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return value

    @property
    def quiet(self) -> DailyRange | None:
        """Quiet hours as a range, or None."""
        return parse_daily_range(self.quiet_hours)

    @property
    def silent(self) -> DailyRange | None:
        """Silent-notification hours as a range, or None."""
        return parse_daily_range(self.silent_hours)

    def carries(self, section: str) -> bool:
        """Whether articles of `section` belong in this channel."""
        return not self.sections or section in self.sections


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
# The address part of a mailbox: no spaces, controls, brackets, quotes or commas, one "@".
ADDR_SPEC = re.compile(
    r"^[^\s\x00-\x1f\x7f<>()\[\],;:\"\\@]+@[^\s\x00-\x1f\x7f<>()\[\],;:\"\\@]+\.[^\s\x00-\x1f\x7f<>()\[\],;:\"\\@]+$"
)


def check_mailbox(value: str) -> str:
    """A mailbox: `addr@domain` or `Display Name <addr@domain>`; raises ValueError."""
    from email.utils import parseaddr

    if any(ch in value for ch in "\r\n\x00"):
        raise ValueError("a mailbox may not contain line breaks or NUL")
    name, addr = parseaddr(value)
    if not addr or not ADDR_SPEC.match(addr) or not addr.isascii():
        raise ValueError(f"{value!r} is not a mailbox like 'News Arena <brief@example.com>'")
    return value


class EmailConfig(_Strict):
    """Email editions: sender identity and message headers. (Issue: email.)"""

    # From header of every email (MAIL_FROM overrides it); also the envelope sender.
    from_address: str = "News Arena <brief@newsarenaindia.com>"
    # Where replies go; "" sends no Reply-To (replies go to from_address).
    reply_to: str = ""
    # Right-hand side of Message-IDs: a domain we own, so ids never collide with others'.
    message_id_domain: str = "newsarenaindia.com"
    # List-Id (RFC 2919) per edition; "{edition}" is the edition's slug. Mail clients
    # and filters key on it, so it must stay stable once readers have filters.
    list_id: str = "{edition}.editions.newsarenaindia.com"
    # Mailbox for the mailto: half of List-Unsubscribe; "" sends only the https URL.
    unsubscribe_mailto: str = "unsubscribe@newsarenaindia.com"
    # --- issue 13 (inbound) ---
    # Domain whose MX is `distributor inbound`: each message's envelope sender becomes
    # bounces+<token>@ it (VERP) and the mailto unsubscribe unsubscribe+<token>@ it, the
    # token naming the delivery. "" keeps from_address as envelope sender and
    # unsubscribe_mailto as it is (then bounces and mailto unsubscribes go nowhere).
    bounce_domain: str = ""
    # UTM parameters added to every link to the site; "" leaves that parameter out.
    # utm_campaign may use "{edition}" (slug) and "{date}" (issue date, YYYY-MM-DD).
    utm_source: str = "newsletter"
    utm_medium: str = "email"
    utm_campaign: str = "{edition}"
    # Greeting when the subscriber gave a name ("{name}" is replaced), and when not.
    greeting: str = "Hi {name},"
    greeting_anonymous: str = "Hello,"
    # Longest top headline (characters as a reader counts them: grapheme clusters) quoted
    # in the Subject before it is cut with "…".
    subject_headline_chars: int = Field(default=90, ge=20, le=300)
    # The lead image's box in the 600px column (600 minus 2 x 24px padding): the widest
    # it is drawn, and its height when the image declares no size of its own (Outlook
    # uses these attributes literally, so the height matches the site's 16:9 crops).
    # Images that declare a size are drawn no larger, in their own proportions
    # (render/email_images.py).
    image_width: int = Field(default=552, ge=100, le=600)
    image_height: int = Field(default=311, ge=50, le=1200)
    # Largest encoded HTML part of a digest, in bytes. Gmail clips a message near 102 KB
    # and hides its end, Unsubscribe included; over budget, a variant is rendered again
    # without the last cards' thumbnails, then standfirsts, then with its last articles
    # moved into "+ N more on the site", until it fits (and that is logged).
    html_budget_bytes: int = Field(default=95 * 1024, ge=16 * 1024, le=10 * 1024 * 1024)
    # Send a short welcome email once a subscription is confirmed, saying which editions
    # the reader will receive and when.
    welcome: bool = True
    # DKIM signing: all three set to sign, all empty not to. The key file (PEM) is
    # relative to the config file's folder; it is a secret, keep it out of the repo.
    dkim_selector: str = ""
    dkim_domain: str = ""
    dkim_private_key_file: str = ""
    # --- issue 5 (engine): dispatch timing ---
    # Deprecated (issue 10): claims are leases now, see [delivery] lease_seconds. Still
    # read so old config files load; ignored, with a warning at start-up.
    claim_timeout_seconds: int | None = Field(default=None, ge=1, le=24 * 3600)
    # A deferred delivery's first retry waits this long; each further failure doubles
    # the wait, up to retry_max_seconds (and never past the delivery's deadline).
    retry_first_seconds: int = Field(default=300, ge=1, le=24 * 3600)
    retry_max_seconds: int = Field(default=7200, ge=1, le=7 * 24 * 3600)
    # A delivery still deferred this many hours after its run was queued fails: news goes
    # stale, and a Morning Brief arriving in the evening is worse than none.
    delivery_deadline_hours: int = Field(default=12, ge=1, le=7 * 24)
    # --- dispatch throughput ---
    # Deliveries per batch (one task, one claim, one subscriber-id range). Large enough
    # to amortise the claim and ledger round trips; a batch's length no longer matters to
    # recovery (its lease is renewed while it runs, see [delivery] lease_seconds).
    batch_size: int = Field(default=1000, ge=10, le=50_000)
    # SMTP connections one batch uses at once (each in its own thread).
    connections: int = Field(default=4, ge=1, le=32)
    # Most messages over one connection before it is closed and a new one opened (many
    # relays cap messages per session).
    messages_per_connection: int = Field(default=250, ge=1, le=10_000)

    @model_validator(mode="after")
    def _deprecated_claim_timeout(self) -> "EmailConfig":
        if self.claim_timeout_seconds is not None:
            _log.warning(
                "email.claim_timeout_seconds is deprecated and ignored: claims are leases renewed while "
                "a sender works; set [delivery] lease_seconds (default 30) instead"
            )
        return self

    @model_validator(mode="after")
    def _retry_order(self) -> "EmailConfig":
        if self.retry_max_seconds < self.retry_first_seconds:
            raise ValueError(
                f"retry_max_seconds ({self.retry_max_seconds}) is less than retry_first_seconds ({self.retry_first_seconds})"
            )
        return self

    @field_validator("from_address")
    @classmethod
    def _from_is_mailbox(cls, value: str) -> str:
        return check_mailbox(value)

    @field_validator("reply_to", "unsubscribe_mailto")
    @classmethod
    def _optional_mailbox(cls, value: str) -> str:
        return check_mailbox(value) if value else value

    @field_validator("bounce_domain")
    @classmethod
    def _bounce_domain(cls, value: str) -> str:
        if value and not _HOSTNAME.match(value):
            raise ValueError(f"{value!r} is not a domain name like bounces.example.com")
        return value.lower()

    @field_validator("message_id_domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if not _HOSTNAME.match(value):
            raise ValueError(f"{value!r} is not a domain name like example.com")
        return value

    @field_validator("list_id")
    @classmethod
    def _list_id(cls, value: str) -> str:
        try:
            sample = value.format(edition="morning")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"{value!r}: only the placeholder {{edition}} is allowed") from exc
        if not _HOSTNAME.match(sample):
            raise ValueError(f"{value!r} is not a dotted list id like {{edition}}.list.example.com")
        return value

    @field_validator("utm_source", "utm_medium", "utm_campaign")
    @classmethod
    def _utm(cls, value: str) -> str:
        try:
            value.format(edition="morning", date="2025-07-04")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"{value!r}: only the placeholders {{edition}} and {{date}} are allowed") from exc
        if any(ch.isspace() or ch in "&#=?" for ch in value):
            raise ValueError(f"{value!r} may not contain spaces or & # = ?")
        return value

    @field_validator("greeting")
    @classmethod
    def _greeting(cls, value: str) -> str:
        if "{name}" not in value:
            raise ValueError("must contain {name}")
        return value

    @field_validator("greeting", "greeting_anonymous")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(ch in value for ch in "\r\n\x00"):
            raise ValueError("must be one line")
        return value

    @model_validator(mode="after")
    def _dkim_all_or_nothing(self) -> "EmailConfig":
        parts = {
            "dkim_selector": self.dkim_selector,
            "dkim_domain": self.dkim_domain,
            "dkim_private_key_file": self.dkim_private_key_file,
        }
        if any(parts.values()) and not all(parts.values()):
            missing = ", ".join(k for k, v in parts.items() if not v)
            raise ValueError(f"DKIM needs dkim_selector, dkim_domain and dkim_private_key_file; missing {missing}")
        if self.dkim_domain and not _HOSTNAME.match(self.dkim_domain):
            raise ValueError(f"dkim_domain: {self.dkim_domain!r} is not a domain name")
        if self.dkim_selector and not re.match(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$", self.dkim_selector):
            raise ValueError(f"dkim_selector: {self.dkim_selector!r} is not a DNS label")
        return self

    @property
    def dkim_enabled(self) -> bool:
        return bool(self.dkim_selector)


class DeliveryConfig(_Strict):
    """What every channel kind's ledger shares: leases on claimed rows. (Issue 10.)"""

    # Seconds a sender's claim on ledger rows (emails, Telegram posts) lasts without
    # renewal. A live sender renews it every lease_seconds / 3; a sender that died
    # (SIGKILL, lost machine) stops renewing, and its rows are taken over (email) or
    # marked unknown (Telegram) once this has passed. Short means quick recovery; long
    # means a sender survives longer database stalls without losing its rows.
    lease_seconds: int = Field(default=30, ge=3, le=3600)


class WebConfig(_Strict):
    """The public web app: subscribe limits and pages. (Issue: email.)"""

    # Subscribe attempts (valid or not) one client IP may make per window; more get 429.
    # Counted per IP so one script cannot sign up a list of strangers.
    subscribe_per_ip: int = Field(default=10, ge=1, le=100_000)
    # Length of that window, in seconds; it starts at the IP's first attempt.
    subscribe_ip_window_seconds: int = Field(default=3600, ge=1, le=7 * 86400)
    # Subscribe attempts for one address per window, from any IP: caps how many
    # confirmation emails a stranger can make us send to one inbox.
    subscribe_per_address: int = Field(default=3, ge=1, le=1000)
    # Length of that window, in seconds.
    subscribe_address_window_seconds: int = Field(default=86400, ge=1, le=30 * 86400)
    # An IPv6 client counts per /N network for the per-IP limit: one host usually holds a
    # whole /64 and can take a new address for every request. IPv4 counts per address.
    subscribe_ipv6_prefix: int = Field(default=64, ge=16, le=128)
    # The per-address limit counts per mailbox: the part of the address from this
    # character to the @ is a tag ("reader+news@" reaches "reader@"). "" keeps tags.
    mailbox_tag_separator: str = Field(default="+", max_length=1)
    # Domains whose mailboxes ignore dots before the @ ("r.eader@" reaches "reader@"); they
    # all count as the first one (googlemail.com mail reaches gmail.com inboxes).
    mailbox_dotless_domains: list[str] = Field(default_factory=lambda: ["gmail.com", "googlemail.com"], max_length=100)
    # Hours a confirmation link stays valid. Unsubscribe and preference links never expire
    # (an old email must still let its reader leave), but they are still verified.
    confirm_max_age_hours: int = Field(default=72, ge=1, le=24 * 30)
    # Name of the subscribe form's hidden honeypot field: people leave it empty, form-filling
    # bots fill it in, and a filled one is answered as if fine while nothing is stored.
    honeypot_field: str = "website"
    # Largest request body the public forms accept, in bytes; a subscribe or preferences
    # form is well under 2 KiB, so anything far larger is refused (413) unread.
    max_body_bytes: int = Field(default=16384, ge=1024, le=1024 * 1024)
    # Serve the public archive of sent editions at /archive.
    archive: bool = True
    # Edition runs listed per archive page.
    archive_page_size: int = Field(default=30, ge=1, le=500)
    # Staging only: let processes that send real mail or posts start with an http, private
    # or loopback PUBLIC_BASE_URL (e.g. http://192.168.1.20:8000 with a mail catcher).
    # Production needs an https address readers can reach, or every link is dead.
    allow_insecure_public_url: bool = False

    @field_validator("mailbox_dotless_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        for domain in value:
            if not re.match(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", domain):
                raise ValueError(f"{domain!r} is not a lower-case domain name")
        return value

    @field_validator("honeypot_field")
    @classmethod
    def _honeypot_name(cls, value: str) -> str:
        if not re.match(r"^[a-z][a-z0-9_]{1,31}$", value):
            raise ValueError(f"{value!r} is not a form field name (lowercase letters, digits, _)")
        if value in {"email", "name", "sections", "editions", "timezone", "format"}:
            raise ValueError(f"{value!r} is a real subscribe field; the honeypot needs its own name")
        return value


class AdminConfig(_Strict):
    """The operator console at /admin. (Issue: console.)"""

    # Minutes a signed-in console session may sit unused before it ends.
    idle_minutes: int = Field(default=30, ge=1, le=7 * 24 * 60)
    # Failed or not, login attempts allowed per account and per client network (an IPv6
    # /64 or an IPv4 address) in each window; more are refused with 429 until it passes.
    login_per_account: int = Field(default=5, ge=1, le=1000)
    login_per_ip: int = Field(default=20, ge=1, le=100_000)
    login_window_seconds: int = Field(default=900, ge=1, le=86_400)
    # Test sends (preview to one address) an operator may make per hour.
    test_sends_per_hour: int = Field(default=20, ge=1, le=10_000)
    # How often the live parts of a page (progress bars) ask for fresh figures, seconds.
    refresh_seconds: int = Field(default=3, ge=1, le=300)


class InboundConfig(_Strict):
    """Bounces, complaints and mailto unsubscribes coming back. (Issue 13: inbound.)"""

    # Largest message `distributor inbound` accepts over SMTP/LMTP, in bytes (552 above).
    # DSNs and complaint reports quote the original message, which may be large.
    max_message_bytes: int = Field(default=10 * 1024 * 1024, ge=64 * 1024, le=100 * 1024 * 1024)
    # Soft bounces (4.x.x) suppress an address once they fall on this many different
    # days within soft_bounce_window_days (each day counts once, like Mailman's score).
    soft_bounce_threshold: int = Field(default=3, ge=1, le=100)
    soft_bounce_window_days: int = Field(default=14, ge=1, le=365)
    # IMAP mode: the folder handled messages are moved to ("" only flags them \Seen
    # and keeps them where they are).
    imap_done_folder: str = "Processed"
    # IMAP mode: the folder read.
    imap_folder: str = "INBOX"
    # Amazon SES through SNS: the topic ARNs whose notifications are accepted at
    # /webhooks/esp/ses (signature checked against Amazon's certificate). Empty: off.
    ses_topic_arns: tuple[str, ...] = ()
    # SendGrid Event Webhook: the verification public key SendGrid shows (base64 DER,
    # ECDSA P-256) for /webhooks/esp/sendgrid. "": off.
    sendgrid_public_key: str = ""
    # Seconds a signed SendGrid or Mailgun webhook call stays acceptable (replay window).
    webhook_max_age_seconds: int = Field(default=900, ge=30, le=86_400)
    # Days handled inbound messages are remembered (for idempotency, and unknown ones
    # for an operator to read). MTAs retry for up to 5 days. Subscriber events are kept.
    keep_days: int = Field(default=90, ge=7, le=3650)

    @field_validator("ses_topic_arns")
    @classmethod
    def _arns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for arn in value:
            if not re.match(r"^arn:aws(-[a-z]+)*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$", arn):
                raise ValueError(f"{arn!r} is not an SNS topic ARN like arn:aws:sns:us-east-1:123456789012:bounces")
        return value

    @field_validator("sendgrid_public_key")
    @classmethod
    def _sendgrid_key(cls, value: str) -> str:
        if value:
            from distributor.inbound.esp import load_sendgrid_key

            load_sendgrid_key(value)  # ValueError naming the problem
        return value


class MetricsConfig(_Strict):
    """Prometheus metrics at /metrics. (Issue: console.)"""

    # Serve /metrics (Prometheus text format). It answers only with the operator bearer
    # token (OPERATOR_TOKEN), as Prometheus sends it with `authorization: {credentials: ...}`.
    enabled: bool = False


class TelegramConfig(_Strict):
    """Telegram sending: rate limits, retries, edits, timeouts. (Issue: telegram.)

    The rate limits are shared by every worker (in Redis when REDIS_URL is set) and count
    every message-changing call (posts and edits). Telegram's documented limits are about
    20 messages a minute in one group or channel and about 30 a second overall; we stay
    under them so flood control (429 RetryAfter) is the exception, not the rule.
    """

    # Most messages one chat receives within `channel_period_seconds`.
    channel_messages: int = Field(default=20, ge=1, le=10_000)
    # Length of that sliding window, in seconds.
    channel_period_seconds: float = Field(default=60.0, gt=0, le=86_400)
    # Most messages the bot sends to all chats together within `overall_period_seconds`.
    overall_messages: int = Field(default=25, ge=1, le=10_000)
    # Length of that sliding window, in seconds.
    overall_period_seconds: float = Field(default=1.0, gt=0, le=3_600)
    # Prefix of the Redis keys holding the shared windows and per-chat holds.
    rate_key_prefix: str = Field(default="distributor:telegram", min_length=1, max_length=100)
    # Longest wait a worker spends in place, for a rate-limit slot or a RetryAfter, before
    # it leaves the post pending for a later attempt instead (Mastodon and Bluesky
    # budgets too: delivery.social_limits).
    max_retry_wait_seconds: float = Field(default=120.0, ge=0, le=3_600)
    # An updated article edits its posted message (editMessageText / editMessageCaption)
    # for this many hours after posting; later changes leave the post alone. 0: never edit.
    edit_window_hours: float = Field(default=48.0, ge=0, le=24 * 365)
    # Instant posts skip articles published longer ago than this many hours, so the first
    # ingest of a feed's backlog does not flood a channel with old news.
    instant_max_age_hours: float = Field(default=6.0, gt=0, le=24 * 365)
    # Seconds to open a connection to the Bot API.
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    # Seconds to send a request; a timeout after this point is ambiguous (the post may exist).
    write_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    # Seconds to wait for the answer; a timeout here is ambiguous too.
    read_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    # Deprecated (issue 10): a post's claim is a lease now, see [delivery] lease_seconds.
    # Still read so old config files load; ignored, with a warning at start-up.
    stale_claim_seconds: float | None = Field(default=None, gt=0, le=86_400)

    @model_validator(mode="after")
    def _deprecated_stale_claim(self) -> "TelegramConfig":
        if self.stale_claim_seconds is not None:
            _log.warning(
                "telegram.stale_claim_seconds is deprecated and ignored: a post's claim is a lease renewed "
                "while it is sent; set [delivery] lease_seconds (default 30) instead"
            )
        return self

    @property
    def request_seconds(self) -> float:
        """The longest one Bot API request can take before its timeouts give up."""
        return self.connect_timeout_seconds + self.write_timeout_seconds + self.read_timeout_seconds


class TrendingWeights(_Strict):
    """Points one signal of each kind is worth when fresh (it halves every half-life)."""

    # One click on one of our own links (email, Telegram) through /c/{token}.
    click: float = Field(default=1.0, ge=0, le=1e6)
    # One page view pushed by the site (POST /webhooks/pageviews). Views are far more
    # numerous than clicks from our own readers, so each counts for less.
    view: float = Field(default=0.1, ge=0, le=1e6)
    # The feed put the article in site.trending_category (an editor's flag), counted
    # once, from the article's publication time.
    editor: float = Field(default=20.0, ge=0, le=1e6)


class TrendingConfig(_Strict):
    """What makes an article trend: signals, their weights and decay, pins. (Issue: trending.)"""

    # URLs or article keys pinned to the top of every Trending group, in this order.
    pins: tuple[str, ...] = ()
    # Send article links in email and Telegram posts through {PUBLIC_BASE_URL}/c/{token},
    # which counts the click and redirects to the article; false links straight to the
    # article (and clicks are not counted).
    click_tracking: bool = True
    # Hours after which a signal counts half as much (a quarter after twice as long...).
    half_life_hours: float = Field(default=6.0, ge=0.01, le=24 * 365)
    # Points per signal kind (see TrendingWeights).
    weights: TrendingWeights = TrendingWeights()
    # Articles listed by `distributor trending` when --limit is not given (each edition
    # takes its own trending_limit).
    top: int = Field(default=20, ge=1, le=1000)
    # Least score (points now, after decay) that gets an article into a Trending group;
    # pinned articles need none.
    min_score: float = Field(default=1.0, ge=0)
    # Prefix of the Redis keys holding the scores when REDIS_URL is set.
    redis_key_prefix: str = Field(default="distributor:trending", min_length=1, max_length=100)
    # Hours page views for a URL we have no article for are kept, waiting for it to
    # arrive; older ones are dropped.
    pending_view_hours: float = Field(default=72.0, gt=0, le=24 * 90)
    # Largest view count one entry of a page-views push may carry; bigger is refused as
    # a broken counter rather than allowed to swamp every other signal.
    max_views_per_entry: int = Field(default=1_000_000, ge=1, le=10**12)
    # User-Agent fragments (case-insensitive) of link-preview fetchers and crawlers: /c/
    # still redirects them but does not count a click. Telegram fetches every posted link
    # once for its preview, which would otherwise count as a reader.
    uncounted_agents: tuple[str, ...] = (
        "TelegramBot",
        "Twitterbot",
        "facebookexternalhit",
        "Slackbot",
        "Discordbot",
        "LinkedInBot",
        "WhatsApp",
        "Googlebot",
        "bingbot",
    )

    @field_validator("uncounted_agents")
    @classmethod
    def _agent_fragments(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        blank = [i for i, fragment in enumerate(value) if not fragment.strip()]
        if blank:
            raise ValueError(f"empty fragment at position {blank[0]}: it would match every browser")
        return value

    @property
    def half_life_seconds(self) -> float:
        return self.half_life_hours * 3600.0

    def weight(self, kind: str) -> float:
        """The weight of a signal kind ("click", "view" or "editor")."""
        return float(getattr(self.weights, kind))


class DemoConfig(_Strict):
    """What makes the shipped sample show real output with nothing configured."""

    # CSV of subscribers (relative to the config file) imported as confirmed when the
    # list is empty and mail goes to the outbox (no SMTP_URL). Empty: none.
    subscribers: str = ""


class PathsConfig(_Strict):
    """Where state lives on disk (relative to the working directory)."""

    var_dir: str = "var"


class FileConfig(_Strict):
    """The whole config file."""

    site: SiteConfig = SiteConfig()
    sections: tuple[SectionConfig, ...] = Field(min_length=1)
    sources: tuple[SourceConfig, ...] = ()
    ingest: IngestConfig = IngestConfig()
    webhook: WebhookConfig = WebhookConfig()
    editions: dict[Slug, EditionConfig] = {}
    channels: dict[Slug, ChannelConfig] = {}
    telegram: TelegramConfig = TelegramConfig()
    email: EmailConfig = EmailConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    web: WebConfig = WebConfig()
    admin: AdminConfig = AdminConfig()
    metrics: MetricsConfig = MetricsConfig()
    inbound: InboundConfig = InboundConfig()
    trending: TrendingConfig = TrendingConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    celery: CeleryConfig = CeleryConfig()
    demo: DemoConfig = DemoConfig()
    paths: PathsConfig = PathsConfig()

    @model_validator(mode="after")
    def _cross_references(self) -> "FileConfig":
        slugs = [s.slug for s in self.sections]
        dupes = sorted({s for s in slugs if slugs.count(s) > 1})
        if dupes:
            raise ValueError(f"sections: duplicate slug(s) {', '.join(dupes)}")
        if self.site.fallback_section not in slugs:
            raise ValueError(
                f"site.fallback_section: {self.site.fallback_section!r} is not a configured section"
            )
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"sources: duplicate name(s) {', '.join(dupes)}")
        for name, channel in self.channels.items():
            for slug in channel.sections:
                if slug not in slugs:
                    raise ValueError(f"channels.{name}.sections: unknown section {slug!r}")
            for edition in channel.digests:
                if edition not in self.editions:
                    raise ValueError(f"channels.{name}.digests: unknown edition {edition!r}")
        # Two entries for one chat would post every article there twice.
        chats: dict[str, str] = {}
        for name, channel in self.channels.items():
            if channel.kind != "telegram":
                continue
            if channel.chat_id.lower() in chats:
                raise ValueError(
                    f"channels.{name}.chat_id: {channel.chat_id} is already channels.{chats[channel.chat_id.lower()]}"
                )
            chats[channel.chat_id.lower()] = name
        return self


class Environment(BaseSettings):
    """Secrets and endpoints, from the environment only (never written in the file)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    distributor_config: str | None = None
    database_url: str | None = None
    redis_url: str | None = None
    smtp_url: SecretStr | None = None  # may hold a password
    mail_from: str | None = None
    telegram_bot_token: SecretStr | None = None
    telegram_api_base_url: str | None = None
    secret_key: SecretStr | None = None
    public_base_url: str | None = None
    operator_token: SecretStr | None = None  # bearer token of the operator HTTP API
    # ESP webhooks (issue 13): Mailgun's HTTP webhook signing key, and the
    # "user:password" Postmark is told to send as basic auth. Unset: endpoint answers 404.
    mailgun_webhook_signing_key: SecretStr | None = None
    postmark_webhook_auth: SecretStr | None = None


# Used when SECRET_KEY is unset: fine for the zero-configuration demo, where nothing
# leaves the machine. Anyone can read it here, so every process outside the demo refuses
# it (distributor.startup).
DEMO_SECRET = "insecure-demo-secret-set-SECRET_KEY"


class Settings:
    """Everything the domain needs, loaded once."""

    def __init__(self, file: FileConfig, env: Environment, config_path: Path) -> None:
        self.file = file
        self.env = env
        self.config_path = config_path

    # --- the file -------------------------------------------------------------------
    @property
    def site(self) -> SiteConfig:
        return self.file.site

    @property
    def sections(self) -> tuple[SectionConfig, ...]:
        return self.file.sections

    @property
    def editions(self) -> dict[str, EditionConfig]:
        return self.file.editions

    @property
    def channels(self) -> dict[str, ChannelConfig]:
        return self.file.channels

    @cached_property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.site.timezone)

    def section(self, slug: str) -> SectionConfig:
        for section in self.sections:
            if section.slug == slug:
                return section
        raise KeyError(slug)

    def source_location(self, source: SourceConfig) -> str:
        """A source's URL, or its file path resolved against the config file's folder."""
        if re.match(r"^https?://", source.url):
            return source.url
        path = Path(source.url)
        if not path.is_absolute():
            path = self.config_path.parent / path
        return str(path)

    # --- the environment ------------------------------------------------------------
    @property
    def var_dir(self) -> Path:
        return Path(self.file.paths.var_dir)

    @property
    def outbox_dir(self) -> Path:
        return self.var_dir / "outbox"

    @property
    def database_url(self) -> str:
        return self.env.database_url or f"sqlite:///{self.var_dir / 'distributor.db'}"

    @property
    def redis_url(self) -> str | None:
        return self.env.redis_url or None

    @property
    def public_base_url(self) -> str:
        return (self.env.public_base_url or "http://127.0.0.1:8000").rstrip("/")

    @property
    def secret_key(self) -> str:
        return self.env.secret_key.get_secret_value() if self.env.secret_key else DEMO_SECRET

    @property
    def secret_key_is_demo(self) -> bool:
        return self.env.secret_key is None

    @property
    def operator_token(self) -> str | None:
        return self.env.operator_token.get_secret_value() if self.env.operator_token else None

    def credential_names(self, name: str) -> tuple[str, ...]:
        """The environment variables a channel's posts need (names, never values), by
        the channel's name upper-cased (dashes as underscores); the one place they are
        spelled. Telegram channels share TELEGRAM_BOT_TOKEN."""
        config = self.channels.get(name)
        stem = name.upper().replace("-", "_")
        if config is not None and config.kind == "mastodon":
            return (f"MASTODON_{stem}_TOKEN",)
        if config is not None and config.kind == "bluesky":
            return (f"BLUESKY_{stem}_HANDLE", f"BLUESKY_{stem}_APP_PASSWORD")
        return ("TELEGRAM_BOT_TOKEN",)

    def channel_credentials(self, name: str) -> dict[str, str]:
        """A Mastodon or Bluesky channel's credentials from the environment (see
        `credential_names`); {} when they are not set, and for Telegram channels (the bot
        token is shared: TELEGRAM_BOT_TOKEN)."""
        config = self.channels.get(name)
        if config is None or config.kind == "telegram":
            return {}
        values = [os.environ.get(variable, "").strip() for variable in self.credential_names(name)]
        if not all(values):
            return {}
        keys = ("token",) if config.kind == "mastodon" else ("handle", "app_password")
        return dict(zip(keys, values))

    def secrets(self) -> list[str]:
        """Every secret value in force, for masking in logs and output."""
        found = []
        if self.env.operator_token:
            found.append(self.env.operator_token.get_secret_value())
        for secret in (self.env.mailgun_webhook_signing_key, self.env.postmark_webhook_auth):
            if secret:
                found.append(secret.get_secret_value())
        if self.env.secret_key:
            found.append(self.env.secret_key.get_secret_value())
        if self.env.telegram_bot_token:
            found.append(self.env.telegram_bot_token.get_secret_value())
        for name in self.channels:
            found += [value for value in self.channel_credentials(name).values() if value]
        if self.env.smtp_url:
            from urllib.parse import urlsplit

            password = urlsplit(self.env.smtp_url.get_secret_value()).password
            if password:
                found.append(password)
        if self.env.database_url:
            from sqlalchemy.engine import make_url

            try:
                password = make_url(self.env.database_url).password
            except Exception:  # noqa: BLE001 - a bad URL fails later with its own message
                password = None
            if password:
                found.append(str(password))
        return found


def _format_validation_error(path: Path, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        reason = err["msg"]
        if err["type"] == "extra_forbidden":
            reason = "unknown key"
        reason = reason.removeprefix("Value error, ")
        lines.append(f"{path}: {key}: {reason}")
    return "\n".join(lines)


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The config file to read, by the documented lookup order."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get("DISTRIBUTOR_CONFIG")
    if from_env:
        return Path(from_env)
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    if local.exists():
        return local
    return PROJECT_ROOT / DEFAULT_CONFIG_NAME


def load_settings(config: str | os.PathLike[str] | None = None) -> Settings:
    """Read and validate the config file and the environment, or raise ConfigError."""
    path = find_config(config)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        file = FileConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, exc)) from None
    try:
        env = Environment()
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(Path("(environment)"), exc)) from None
    return Settings(file, env, path.resolve())
