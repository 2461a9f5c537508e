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

import os
import re
import tomllib
from datetime import tzinfo
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
    postal_address: str = Field(min_length=1, default="News Arena India Pvt Ltd, New Delhi, India")
    fallback_section: Slug = "nation"
    trending_category: str = "Trending"


class SectionConfig(_Strict):
    """One site section. Aliases starting with `/` are URL path prefixes; others are
    feed category names (matched case-insensitively)."""

    slug: Slug
    label: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
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
    max_articles: int = Field(default=40, ge=1, le=500)
    trending_limit: int = Field(default=5, ge=0, le=50)
    default: bool = False
    local_time: bool = False
    paused: bool = False

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


class ChannelConfig(_Strict):
    """A Telegram channel. Later issues add keys here."""

    chat_id: str = Field(min_length=2)
    sections: tuple[Slug, ...] = ()  # empty means every section
    instant: bool = False
    digests: tuple[Slug, ...] = ()

    @field_validator("chat_id")
    @classmethod
    def _chat_id_form(cls, value: str) -> str:
        if not re.match(r"^(@[A-Za-z][A-Za-z0-9_]{3,}|-?\d+)$", value):
            raise ValueError(f"{value!r} is neither @username nor a numeric chat id")
        return value


class EmailConfig(_Strict):
    """Email editions: sender identity, message headers, dispatch limits. (Issue: email.)"""


class WebConfig(_Strict):
    """The public web app: subscribe limits and pages. (Issue: email.)"""


class TelegramConfig(_Strict):
    """Telegram sending: rate limits, edits, link previews. (Issue: telegram.)"""


class TrendingConfig(_Strict):
    """Editor pins (URLs or article keys) that lead the Trending group."""

    pins: tuple[str, ...] = ()


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
    web: WebConfig = WebConfig()
    trending: TrendingConfig = TrendingConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
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


# Used when SECRET_KEY is unset: fine for the one-process demo, refused nowhere, but
# `config check` warns because signatures made with it are forgeable by anyone.
_DEMO_SECRET = "insecure-demo-secret-set-SECRET_KEY"


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
        return self.env.secret_key.get_secret_value() if self.env.secret_key else _DEMO_SECRET

    @property
    def secret_key_is_demo(self) -> bool:
        return self.env.secret_key is None

    def secrets(self) -> list[str]:
        """Every secret value in force, for masking in logs and output."""
        found = []
        if self.env.secret_key:
            found.append(self.env.secret_key.get_secret_value())
        if self.env.telegram_bot_token:
            found.append(self.env.telegram_bot_token.get_secret_value())
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
