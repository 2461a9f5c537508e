"""Start-up checks: what a process needs before it signs, verifies or sends for real.

One rule says what the zero-configuration demo is (`is_demo`), and every entry point
(`distributor run|web|worker|beat|send|...`, `celery -A tasks.app worker|beat`, `config
check`) asks `startup_problems`, so they can never disagree. Outside the demo:

- SECRET_KEY (and OPERATOR_TOKEN when set) must be a real secret: not the public demo
  key, not a placeholder copied from .env.example, at least 32 bytes. Anyone who knows the
  key can sign webhooks (a forged article is posted to the channels at once) and
  subscriber links.
- A process that sends real mail or real posts (SMTP_URL or TELEGRAM_BOT_TOKEN set) needs
  a PUBLIC_BASE_URL that readers can reach: https on a public host. Otherwise every
  unsubscribe, preferences, confirmation and click link in what it sends is dead, and
  bulk mail without a working one-click unsubscribe breaks Gmail's and Yahoo's rules.
  `web.allow_insecure_public_url` lets a staging setup use http and private addresses.

Pure: reads settings, never the network (no DNS), so the answer is the same everywhere.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from distributor.settings import DEMO_SECRET, Settings

# Shortest SECRET_KEY / OPERATOR_TOKEN accepted outside the demo: 256 bits as raw bytes.
MIN_SECRET_BYTES = 32
MAKE_SECRET = "python3 -c \"import secrets; print(secrets.token_hex(32))\""

# Values people paste without changing: the demo key, .env.example's placeholders, and
# the usual stand-ins. Compared case-insensitively; short ones fail the length rule too,
# but naming them as placeholders says better what went wrong.
PLACEHOLDERS = frozenset(
    value.lower()
    for value in (
        DEMO_SECRET,
        "replace-with-64-hex-characters",
        "replace-with-another-64-hex-characters",
        "changeme",
        "change-me",
        "secret",
        "your-secret-key",
    )
)

# Host names that never reach a reader: RFC 2606 / 6761 special-use names and the usual
# names of private networks. A single-label name ("web", "mailpit") is private as well.
_PRIVATE_SUFFIXES = (
    ".localhost",
    ".local",
    ".localdomain",
    ".internal",
    ".lan",
    ".home.arpa",
    ".test",
    ".invalid",
    ".example",
    ".example.com",
    ".example.net",
    ".example.org",
)


def is_loopback_host(host: str) -> bool:
    """Whether a bind address or URL host stays on this machine (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_public_host(host: str) -> bool:
    """Whether a URL host can be a reader's address for us: a global IP or a public name."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if not name:
        return False
    try:
        return ipaddress.ip_address(name).is_global
    except ValueError:
        pass
    if "." not in name or name in {"example.com", "example.net", "example.org"}:
        return False
    return not ("." + name).endswith(_PRIVATE_SUFFIXES)


def _url_host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def sends_for_real(settings: Settings) -> bool:
    """Whether mail goes to an SMTP server or posts to the Bot API (not to outbox files)."""
    return settings.env.smtp_url is not None or settings.env.telegram_bot_token is not None


def demo_breakers(settings: Settings, *, web_host: str | None = None) -> list[str]:
    """Why this is not the zero-configuration demo; empty when it is.

    The demo is: email and Telegram both to outbox files (no SMTP_URL, no
    TELEGRAM_BOT_TOKEN), links pointing at this machine (PUBLIC_BASE_URL unset or
    loopback), and, for a process that serves the web app, a loopback bind address.
    Nothing then leaves the machine, so the public demo key can sign nothing anyone
    else will verify. `web_host` is the address this process binds, None if it serves none.
    """
    reasons = []
    if settings.env.smtp_url is not None:
        reasons.append("SMTP_URL is set")
    if settings.env.telegram_bot_token is not None:
        reasons.append("TELEGRAM_BOT_TOKEN is set")
    if settings.env.public_base_url and not is_loopback_host(_url_host(settings.env.public_base_url)):
        reasons.append("PUBLIC_BASE_URL is not loopback")
    if web_host is not None and not is_loopback_host(web_host):
        reasons.append(f"the web app binds {web_host or 'every address'}")
    return reasons


def is_demo(settings: Settings, *, web_host: str | None = None) -> bool:
    """The zero-configuration demo (see `demo_breakers`)."""
    return not demo_breakers(settings, web_host=web_host)


def secret_problem(name: str, value: str | None) -> str | None:
    """What is wrong with a signing secret, or None: demo key, placeholder, too short."""
    fix = f"make one with: {MAKE_SECRET}"
    if value is None:
        return f"{name} is not set, so the public demo key would sign; {fix}"
    if value == DEMO_SECRET:
        return f"{name} is the public demo key from the source code; {fix}"
    if value.strip().lower() in PLACEHOLDERS:
        return f"{name} is a placeholder (as in .env.example), not a secret; {fix}"
    size = len(value.encode("utf-8"))
    if size < MIN_SECRET_BYTES:
        return f"{name} is {size} bytes, shorter than {MIN_SECRET_BYTES}; {fix}"
    return None


def public_url_problem(settings: Settings) -> str | None:
    """What is wrong with PUBLIC_BASE_URL for links in real mail and posts, or None."""
    url = settings.env.public_base_url
    if not url:
        return (
            f"PUBLIC_BASE_URL is not set, so every unsubscribe, preferences and click link would "
            f"point at {settings.public_base_url}; set it to the https address readers reach the web app at"
        )
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        scheme = ""
    host = _url_host(url)
    if scheme not in {"http", "https"} or not host:
        return f"PUBLIC_BASE_URL {url!r} is not an http(s) URL"
    if settings.file.web.allow_insecure_public_url:
        return None
    if not is_public_host(host):
        return (
            f"PUBLIC_BASE_URL {url!r} is a loopback, private or reserved address that readers cannot "
            "reach; set the public https address (staging: web.allow_insecure_public_url = true)"
        )
    if scheme != "https":
        return (
            f"PUBLIC_BASE_URL {url!r} is not https; links in mail must be https "
            "(staging: web.allow_insecure_public_url = true)"
        )
    return None


def startup_problems(settings: Settings, *, web_host: str | None = None) -> list[str]:
    """Every reason a process must not start; empty in the demo and in a sound setup.

    Each line names the variable to fix. `web_host`: the address this process serves
    the web app on, or None when it serves none.
    """
    if is_demo(settings, web_host=web_host):
        return []
    problems = [secret_problem("SECRET_KEY", settings.env.secret_key.get_secret_value() if settings.env.secret_key else None)]
    if settings.env.operator_token is not None:
        problems.append(secret_problem("OPERATOR_TOKEN", settings.env.operator_token.get_secret_value()))
    if sends_for_real(settings):
        problems.append(public_url_problem(settings))
    return [p for p in problems if p]


def refusal(process: str, settings: Settings, *, web_host: str | None = None) -> str | None:
    """The message a refusing `process` prints, or None when it may start."""
    problems = startup_problems(settings, web_host=web_host)
    if not problems:
        return None
    why = "; ".join(demo_breakers(settings, web_host=web_host))
    lines = [f"{process} refuses to start: this is not the local demo ({why})"]
    return "\n".join(lines + [f"  {p}" for p in problems])

