"""The welcome email, sent once a subscription is confirmed (`[email] welcome`).

It tells the reader what they will receive and when: each of their editions with its
schedule in words and their sections, with their own preferences and unsubscribe links.
Rendered (Jinja + premailer) per message: it goes out once per confirmation, at the pace
people confirm, so the per-variant splicing of digests would buy nothing here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from distributor.render.email import (
    _clean_url,
    _header,
    _mailbox_header,
    _mailbox_tokens,
    _render_message,
    _text_tokens,
    add_utm,
    clean_address,
    is_web_url,
    mailbox_from,
)
from distributor.settings import EditionConfig, Settings

_DAY_NAMES = {
    "mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday",
    "fri": "Friday", "sat": "Saturday", "sun": "Sunday",
}
_CRON_DAYS = {"0": "sun", "1": "mon", "2": "tue", "3": "wed", "4": "thu", "5": "fri", "6": "sat", "7": "sun"}
_NUMBER = re.compile(r"^\d{1,2}$")


@dataclass(frozen=True)
class EditionPromise:
    """One edition a reader will receive, in words."""

    label: str
    when: str


def _days(days: list[str]) -> str:
    names = [_DAY_NAMES.get(d.lower()[:3], d) + "s" for d in days]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def describe_schedule(config: EditionConfig, zone: str) -> str:
    """When an edition goes out, for a reader: "every day at 07:00 (Asia/Kolkata time)",
    "on Sundays at 09:00 (...)", or "as news breaks" for schedules finer than daily."""
    if config.times:
        at = ", ".join(config.times)
        days = f"on {_days(list(config.days))}" if config.days else "every day"
        return f"{days} at {at} ({zone} time)"
    fields = config.schedule.split()
    if len(fields) == 5:
        minute, hour, dom, month, dow = fields
        if _NUMBER.match(minute) and all(_NUMBER.match(h) for h in hour.split(",")) and dom == month == "*":
            at = ", ".join(f"{int(h):02d}:{int(minute):02d}" for h in hour.split(","))
            if dow == "*":
                return f"every day at {at} ({zone} time)"
            names = [_CRON_DAYS.get(d) for d in dow.split(",")]
            if all(names):
                return f"on {_days(names)} at {at} ({zone} time)"  # type: ignore[arg-type]
    return "as news breaks"


def promises(settings: Settings, editions: tuple[str, ...], zone: str) -> list[EditionPromise]:
    """The reader's editions, in config order, each with its schedule in words."""
    chosen = set(editions)
    return [
        EditionPromise(config.label, describe_schedule(config, zone if config.local_time else settings.site.timezone))
        for name, config in settings.editions.items()
        if name in chosen and config.kind == "digest" and not config.paused
    ]


def render_welcome(
    settings: Settings,
    *,
    email: str,
    name: str,
    editions: tuple[str, ...],
    sections: tuple[str, ...] | None,
    timezone: str,
    text_only: bool,
    preferences_url: str,
    unsubscribe_url: str,
    now: datetime,
) -> bytes:
    """The complete welcome message for one confirmed reader, CRLF line ends."""
    from distributor.render.email import _body_parts, _mime, _mime_text, _Slots, dkim_signer

    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (it becomes the Date header)")
    addr = clean_address(email)
    home = settings.site.base_url
    labels = {s.slug: s.label for s in settings.sections}
    slots = _Slots(settings, "welcome")  # no per-recipient slots: the splice is just bytes
    context = {
        "site": settings.site,
        "link": lambda url: add_utm(url if is_web_url(url) else home, ()),
        "name": name.strip(),
        "promises": promises(settings, editions, timezone or settings.site.timezone),
        "sections": [labels.get(s, s) for s in sections] if sections else None,
        "text_only": text_only,
        "preferences_url": _clean_url(preferences_url),
        "unsubscribe_url": _clean_url(unsubscribe_url),
    }
    subject, html, text = _render_message("welcome_subject.txt", "welcome.html", "welcome.txt", context)
    cfg = settings.file.email
    digest = hmac.new(settings.secret_key.encode(), addr.lower().encode("ascii"), hashlib.sha256).hexdigest()[:20]
    headers: list[bytes | str] = [_mailbox_header("From", mailbox_from(settings))]
    if cfg.reply_to:
        headers.append(_mailbox_header("Reply-To", cfg.reply_to))
    headers += [
        _header("To", _mailbox_tokens(name, addr)),
        _header("Subject", _text_tokens(subject)),
        _header("Date", [format_datetime(now.astimezone(settings.tz))]),
        f"Message-ID: <welcome.{int(now.timestamp())}.{digest}@{cfg.message_id_domain}>\r\n".encode("ascii"),
    ]
    text_body = _body_parts("t", slots.split(text))
    if text_only:
        splice = _mime_text(headers, text_body)
    else:
        boundary = "=_" + hashlib.sha256((html + text).encode("utf-8")).hexdigest()[:28]
        splice = _mime(headers, text_body, _body_parts("h", slots.split(html)), boundary)
    message = splice.join({})
    sign = dkim_signer(settings)
    return sign(message) if sign else message
