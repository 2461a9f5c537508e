"""Email rendering: render, inline and MIME-encode once per variant; splice per recipient.

A *variant* is what every reader with the same set of sections receives. For each one,
`render_variant` runs Jinja (templates/email/), premailer and the MIME encoding exactly
once. The per-recipient parts (To, Message-ID, the List-Unsubscribe URL, the greeting, the
unsubscribe and preferences links in both bodies) are left as placeholders, and the
finished message is kept as a list of byte segments. `RenderedVariant.message(recipient)`
only encodes those few small values and joins the segments: no Jinja, no premailer, no
email-package objects per recipient (those cost ~85 ms and ~4 ms a message here).

Transfer encoding: each body is quoted-printable, or base64 when that is clearly smaller
(Devanagari costs 9 bytes a letter in QP, 4 in base64; see transfer.py for how a base64
body is spliced). In QP every static segment is encoded once and ends at column 0 (with
a soft line break "=" CRLF when it ends mid-line); every per-recipient value is encoded
per call and ends the same way. So a placeholder is never split by a soft line break, no
encoded line is longer than 76 characters, and decoding the joined body gives exactly
the text with the values in place.

Size guard: the encoded HTML part of every variant is measured as it is rendered and kept
under `email.html_budget_bytes` (email_budget.py), so Gmail never clips the footer.

This module is pure: it never sends and never touches the database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html as htmllib
import logging
import re
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from email.utils import format_datetime, parseaddr
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import jinja2
import premailer

from distributor.articles import Article
from distributor.editions import Edition
from distributor.errors import ConfigError, DistributorError
from distributor.settings import ADDR_SPEC, PROJECT_ROOT, Settings, check_mailbox
from distributor.render.email_budget import PERSONAL_RESERVE_BYTES, Trim, keep_first, next_trim
from distributor.render.email_images import hero_box, thumb_box
from distributor.render.script import article_language
from distributor.render.transfer import BASE64, QP, Base64Body, choose
from distributor.short_clicks import short_url
from distributor.text import clusters, graphemes, shorten
from distributor.trending import tracked_url

TEMPLATE_DIR = PROJECT_ROOT / "templates"
log = logging.getLogger(__name__)

# The longest standfirst a compact card shows: about one line beside its thumbnail.
CARD_STANDFIRST_CHARS = 100
# RFC 5322: a header line MUST be at most 998 octets and SHOULD be at most 78.
HEADER_LINE_MAX = 998
HEADER_FOLD_AT = 78
# RFC 2045: quoted-printable lines are at most 76 characters.
QP_LINE_MAX = 76
# RFC 2047: an encoded word is at most 75 characters; 39 UTF-8 bytes make 52 base64
# characters, so "Subject: " plus one word stays within HEADER_FOLD_AT.
ENCODED_WORD_BYTES = 39
# Display names longer than this are cut in headers: they are typed by strangers on a
# public form, and a header line may not exceed HEADER_LINE_MAX.
HEADER_NAME_MAX = 100
# Inbox previews show the preheader's first ~100-140 characters; past this nothing is read.
PREHEADER_MAX = 200
# Values quoted in error messages are cut to this many characters.
EXCERPT_MAX = 80
# Headers the DKIM signature covers (RFC 8058 section 4 asks that List-Unsubscribe and
# List-Unsubscribe-Post be signed; Gmail asks the same of Feedback-ID). Listing an absent
# header signs its absence, so a relay cannot add one later.
DKIM_HEADERS = (
    b"from", b"reply-to", b"to", b"subject", b"date", b"message-id", b"mime-version",
    b"content-type", b"list-id", b"list-unsubscribe", b"list-unsubscribe-post", b"feedback-id",
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_WEB_URL = re.compile(r"^https?://[^\s/?#]+", re.IGNORECASE)
# RFC 5322 atext words separated by single spaces: a phrase that needs no quoting.
_ATOMS = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+( [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_MESSAGE_ID = re.compile(r"^<[^<>\s@]+@[^<>\s@]+>$")
# Characters left as they are in URLs put in headers and bodies; anything else (spaces,
# quotes, angle brackets, non-ASCII) is percent-encoded so it cannot end the <...>.
_URL_SAFE = "!#$%&'()*+,-./:;=?@[]_~"
_PLAIN_URL = re.compile(r"^https?://[A-Za-z0-9!#$%&'()*+,\-./:;=?@\[\]_~]+$", re.IGNORECASE)


class InvalidAddress(DistributorError, ValueError):
    """A recipient address that cannot be put in a header as it is."""


# --------------------------------------------------------------------------------------
# Public values
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    """Per-recipient data, all of it cheap to fill."""

    email: str
    # Greeting "Hi {name}," when set, else the config's generic greeting.
    name: str = ""
    # The https one-click URL (also in List-Unsubscribe); empty: the generic page.
    unsubscribe_url: str = ""
    # Signed preferences link; empty: the generic page.
    preferences_url: str = ""
    # "<...@domain>"; generated (deterministic per run and address) if empty.
    message_id: str = ""
    # The ledger row this message is for: with email.bounce_domain set, the mailto
    # unsubscribe carries its signed token (None: the configured unsubscribe_mailto).
    delivery_id: int | None = None


@dataclass(frozen=True)
class _Splice:
    """A finished message as literal byte segments, named per-recipient slots and base64
    bodies (which encode their own slots)."""

    parts: tuple[bytes | str | Base64Body, ...]

    def join(self, values: Mapping[str, bytes]) -> bytes:
        return b"".join(
            [
                p if p.__class__ is bytes else values[p] if p.__class__ is str else p.encode(values)  # type: ignore
                for p in self.parts
            ]
        )


@dataclass(frozen=True)
class _TextParts:
    """A rendered body as literal strings and slot names, for filling previews."""

    parts: tuple[tuple[bool, str], ...]  # (is_slot, literal or slot name)

    def fill(self, values: Mapping[str, str]) -> str:
        return "".join(values[v] if is_slot else v for is_slot, v in self.parts)


@dataclass(frozen=True)
class RenderedVariant:
    """One variant of one issue: rendered, inlined and MIME-encoded once.

    `html` and `text` still hold the per-recipient placeholders (`DST<nonce>_<slot>_`);
    use `fill_html`/`fill_text` for preview files and the archive.
    """

    key: str  # "all" or the sorted section slugs joined by "+", e.g. "nation+sports"
    sections: tuple[str, ...]  # sorted slugs; () means every section
    subject: str  # the decoded Subject, one line
    html: str  # inlined HTML with placeholders
    text: str  # text part with placeholders
    count: int  # articles in this variant (0: nothing for these sections, do not send)
    run_id: int | None = None
    _splice: _Splice = field(default=_Splice(()), repr=False, compare=False)
    # The same message as text/plain only, for readers who chose the text format.
    _text_splice: _Splice = field(default=_Splice(()), repr=False, compare=False)
    _html_parts: _TextParts = field(default=_TextParts(()), repr=False, compare=False)
    _text_parts: _TextParts = field(default=_TextParts(()), repr=False, compare=False)
    _personal: _Personaliser | None = field(default=None, repr=False, compare=False)

    def message(self, recipient: Recipient, *, text_only: bool = False) -> bytes:
        """The complete RFC 5322 message for one recipient, CRLF line ends (DKIM-signed
        when configured). Cheap: encodes the recipient's values and joins bytes.

        `text_only`: a single text/plain part, for readers whose format is "text".
        """
        assert self._personal is not None
        values = self._personal.values(recipient)
        message = (self._text_splice if text_only else self._splice).join(values)
        return self._personal.sign(message) if self._personal.sign else message


def fill_html(variant: RenderedVariant, recipient: Recipient | None = None) -> str:
    """The variant's HTML for one recipient (None: generic links and greeting)."""
    assert variant._personal is not None
    return variant._html_parts.fill(variant._personal.html_values(recipient))


def fill_text(variant: RenderedVariant, recipient: Recipient | None = None) -> str:
    """The variant's text part for one recipient (None: generic links and greeting)."""
    assert variant._personal is not None
    return variant._text_parts.fill(variant._personal.text_values(recipient))


# --------------------------------------------------------------------------------------
# Links
# --------------------------------------------------------------------------------------


def is_web_url(value: object) -> bool:
    """True for an absolute http(s) URL (the only kind we link to or load images from)."""
    return isinstance(value, str) and bool(_WEB_URL.match(value))


def utm_params(settings: Settings, edition: str, issued: date) -> tuple[tuple[str, str], ...]:
    """The UTM parameters for links in one issue, from config (empty values left out)."""
    cfg = settings.file.email
    values = {"edition": edition, "date": issued.isoformat()}
    params = (
        ("utm_source", cfg.utm_source.format(**values)),
        ("utm_medium", cfg.utm_medium.format(**values)),
        ("utm_campaign", cfg.utm_campaign.format(**values)),
    )
    return tuple((k, v) for k, v in params if v)


def add_utm(url: str, params: Sequence[tuple[str, str]]) -> str:
    """`url` with our UTM parameters: ours replace the same keys already on the link,
    every other parameter (other utm_* included) is kept byte for byte, in place.

    The one function both the HTML and the text part use for links to the site.
    """
    if not params:
        return url
    parts = urlsplit(url)
    ours = {key for key, _ in params}
    kept = [p for p in parts.query.split("&") if p and p.split("=", 1)[0] not in ours]
    added = [f"{key}={quote(value, safe='')}" for key, value in params]
    return urlunsplit(parts._replace(query="&".join(kept + added)))


def _excerpt(value: str) -> str:
    return shorten(value, EXCERPT_MAX, prefer_words=False)


def _clean_url(url: str) -> str:
    """A URL safe inside <...> in a header and in an attribute: no controls or spaces."""
    if _PLAIN_URL.match(url):
        return url  # the usual case: nothing to remove or encode
    url = "".join(_CONTROL.sub("", url).split())
    if url and not is_web_url(url):
        raise ValueError(f"not an http(s) URL: {_excerpt(url)!r}")
    return quote(url, safe=_URL_SAFE)


# --------------------------------------------------------------------------------------
# Headers
# --------------------------------------------------------------------------------------


def clean_header_text(value: str) -> str:
    """One line of text for a header: control characters (CR, LF, NUL, ...) and line
    separators become spaces, runs of whitespace one space. Nothing can start a header."""
    return " ".join(_CONTROL.sub(" ", value).split())


def clean_address(value: str) -> str:
    """A bare addr-spec fit for a header and for SMTP, or InvalidAddress.

    Controls and whitespace are removed first, so "a@x.com\\r\\nBcc: v@y" cannot become a
    header; what is left must be one plain address. A non-ASCII domain is IDNA-encoded;
    a non-ASCII local part is refused (it would need SMTPUTF8).
    """
    if value.isascii() and ADDR_SPEC.match(value):
        return value  # the usual case, checked without rebuilding the string
    addr = "".join(_CONTROL.sub("", value).split())
    local, at, domain = addr.rpartition("@")
    if at and domain and not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidAddress(f"not a usable address: {_excerpt(addr)!r}") from None
        addr = f"{local}@{domain}"
    if not addr.isascii() or not ADDR_SPEC.match(addr):
        raise InvalidAddress(f"not a usable address: {_excerpt(addr)!r}")
    return addr


def _encoded_words(text: str) -> list[str]:
    """RFC 2047 base64 encoded words, each at most 75 chars, split between characters as
    a reader sees them (a flag or a conjunct is never spread over two words, which some
    clients show apart); only a cluster longer than a whole word is split between its
    code points, as RFC 2047 requires at the least."""
    words: list[str] = []
    chunk = bytearray()

    def add(raw: bytes) -> None:
        if chunk and len(chunk) + len(raw) > ENCODED_WORD_BYTES:
            words.append(f"=?utf-8?b?{base64.b64encode(bytes(chunk)).decode('ascii')}?=")
            chunk.clear()
        chunk.extend(raw)

    for cluster in clusters(text):
        raw = cluster.encode("utf-8")
        if len(raw) <= ENCODED_WORD_BYTES:
            add(raw)
        else:
            for ch in cluster:
                add(ch.encode("utf-8"))
    if chunk:
        words.append(f"=?utf-8?b?{base64.b64encode(bytes(chunk)).decode('ascii')}?=")
    return words


def _text_tokens(text: str) -> list[str]:
    """Foldable tokens of unstructured header text (Subject)."""
    text = clean_header_text(text)
    if text.isascii() and "=?" not in text:
        return text.split(" ") if text else []
    return _encoded_words(text)


def _phrase_tokens(name: str) -> list[str]:
    """A display name as tokens: a quoted string when ASCII, else encoded words."""
    name = shorten(clean_header_text(name), HEADER_NAME_MAX)
    if not name:
        return []
    if _ATOMS.match(name) and "=?" not in name:
        return name.split(" ")  # plain words need no quoting and may fold between them
    if name.isascii() and "=?" not in name:
        return ['"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"']
    return _encoded_words(name)


def _mailbox_tokens(name: str, addr: str) -> list[str]:
    return [*_phrase_tokens(name), f"<{addr}>"] if clean_header_text(name) else [addr]


def _header(name: str, tokens: Sequence[str]) -> bytes:
    """One header, folded between tokens at HEADER_FOLD_AT where possible, CRLF-ended."""
    lines = [f"{name}:"]
    for token in tokens:
        if len(lines[-1]) + 1 + len(token) > HEADER_FOLD_AT and len(lines[-1]) > len(name) + 1:
            lines.append(" " + token)
        else:
            lines[-1] += " " + token
    if any(len(line) > HEADER_LINE_MAX for line in lines):
        raise ValueError(f"{name} header would exceed {HEADER_LINE_MAX} characters")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _mailbox_header(name: str, mailbox: str) -> bytes:
    display, addr = parseaddr(mailbox)
    return _header(name, _mailbox_tokens(display, clean_address(addr)))


def mailbox_from(settings: Settings) -> str:
    """The From mailbox: MAIL_FROM from the environment, else email.from_address.
    Also the envelope sender (smtplib takes the address out of it)."""
    value = settings.env.mail_from or settings.file.email.from_address
    try:
        return check_mailbox(value)
    except ValueError as exc:
        where = "MAIL_FROM" if settings.env.mail_from else "email.from_address"
        raise ConfigError(f"{where}: {exc}") from None


def envelope_sender(settings: Settings, delivery_id: int | None = None) -> str:
    """The address for MAIL FROM: bounces+TOKEN@bounce_domain for a delivery when
    email.bounce_domain is set (VERP: a bounce names its delivery), else the bare
    address of `mailbox_from`."""
    if delivery_id is not None and settings.file.email.bounce_domain:
        from distributor.inbound.tokens import address_for

        return address_for(settings, "bounces", delivery_id)
    return parseaddr(mailbox_from(settings))[1]


def feedback_id(settings: Settings, edition: str, run_id: int | None) -> str:
    """Gmail's Feedback-ID, "edition:run:site": complaint rates in Postmaster Tools are
    reported per value of each field. The last field (the sender id) is our domain."""
    fields = [edition, str(run_id) if run_id is not None else "preview", settings.file.email.message_id_domain]
    return ":".join(re.sub(r"[^A-Za-z0-9._-]", "-", f) for f in fields)


# --------------------------------------------------------------------------------------
# Quoted-printable
# --------------------------------------------------------------------------------------


def _qp(text: str) -> bytes:
    """Quoted-printable, CRLF lines of at most 76 characters, ending at column 0.

    Ends with a hard line break when the text does, else with a soft one ("=" CRLF), so
    whatever is joined after it starts a new encoded line and nothing is ever split.
    Called per recipient for the small values, so the common path stays in C.
    """
    if not text:
        return b""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    # With no CR in the input, b2a_qp writes bare LF line ends; they become CRLF below.
    encoded = binascii.b2a_qp(text.encode("utf-8"), quotetabs=False, istext=True, header=False)
    hard_end = encoded[-1:] == b"\n"
    if len(encoded) > QP_LINE_MAX - 1:
        # b2a_qp can leave a line at 77 (an encoded trailing tab or space), and the last
        # line needs room for the soft break we append: re-wrap lines that are too long.
        lines = encoded.split(b"\n")
        if max(map(len, lines)) > QP_LINE_MAX or (not hard_end and len(lines[-1]) > QP_LINE_MAX - 1):
            encoded = b"\n".join(_rewrap(lines, hard_end))
    if hard_end:
        return encoded.replace(b"\n", b"\r\n")
    return encoded.replace(b"\n", b"\r\n") + b"=\r\n"


def _rewrap(lines: list[bytes], hard_end: bool) -> list[bytes]:
    """Split over-long encoded lines with soft breaks, never inside an =XX escape."""
    out: list[bytes] = []
    for index, line in enumerate(lines):
        limit = QP_LINE_MAX - 1 if index == len(lines) - 1 and not hard_end else QP_LINE_MAX
        while len(line) > limit:
            cut = QP_LINE_MAX - 1
            if line[cut - 1 : cut] == b"=":
                cut -= 1
            elif line[cut - 2 : cut - 1] == b"=":
                cut -= 2
            out.append(line[:cut] + b"=")
            line = line[cut:]
        out.append(line)
    return out


# --------------------------------------------------------------------------------------
# Templates and CSS
# --------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def template_environment(root: str = str(TEMPLATE_DIR)) -> jinja2.Environment:
    """The Jinja environment for email: autoescape on for .html, StrictUndefined."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "xml"), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.tests["web_url"] = is_web_url
    # Headlines in the Subject are cut between user-perceived characters, counted as a
    # reader counts them (grapheme clusters), never by Jinja's code-point `truncate`.
    env.filters["shorten"] = lambda text, limit: shorten(text, limit, measure=graphemes)
    return env


def inline_css(html: str) -> str:
    """premailer, once per variant: inline styles.css; @media/:root/:hover rules stay in
    a <style> block with their !important kept (strip_important=False), so dark-mode and
    narrow-screen rules still beat the inlined styles. No network, no files. Classes stay
    (those leftover rules match on them); width/height attributes are ours, not CSS's."""
    return premailer.Premailer(
        html,
        strip_important=False,
        allow_network=False,
        allow_loading_external_files=False,
        keep_style_tags=False,
        disable_validation=True,
        remove_classes=False,
        disable_basic_attributes=["width", "height"],
        cssutils_logging_level=logging.CRITICAL,
    ).transform(pretty_print=False)


# Whitespace that only the template's line breaks put there: between two tags, with a
# line break in it (spaces on one line, as between "Updated" and a headline, are kept).
# One line break stays: in quoted-printable it replaces a soft break ("=" CRLF) that
# would be needed anyway, so it costs nothing, and it keeps golden diffs readable.
_TEMPLATE_BREAKS = re.compile(r">[ \t]*\n\s*<")
# "; " between declarations (and ", " in font lists) in the style attributes premailer writes.
_STYLE_ATTR = re.compile(r'style="([^"]*)"')
# The <style> block premailer leaves (dark mode, narrow screens), pretty-printed by it.
_STYLE_BLOCK = re.compile(r"<style>(.*?)</style>", re.DOTALL)


def compact_html(html: str) -> str:
    """The inlined HTML without needless whitespace: line breaks between tags and the
    spaces premailer puts after each ";" in style attributes. Every byte counts against
    the clipping budget; none of these changes what is shown."""
    html = _TEMPLATE_BREAKS.sub(">\n<", html)
    html = _STYLE_BLOCK.sub(lambda m: "<style>" + " ".join(m.group(1).split()) + "</style>", html)
    return _STYLE_ATTR.sub(lambda m: 'style="' + m.group(1).replace("; ", ";").replace(", ", ",") + '"', html)


def _render_message(subject: str, html: str, text: str, context: dict) -> tuple[str, str, str]:
    """Subject, inlined HTML and text of one message from templates/email/ (the subject
    is rendered first and given to the bodies). premailer runs here, once a call."""
    env = template_environment()
    context["subject"] = clean_header_text(env.get_template(f"email/{subject}").render(context))
    body = compact_html(inline_css(env.get_template(f"email/{html}").render(context))) + "\n"
    plain = env.get_template(f"email/{text}").render(context) + "\n"
    return context["subject"], body, plain


class _Slots:
    """Placeholder tokens for per-recipient values.

    The token carries a nonce keyed with SECRET_KEY, so article text cannot forge one;
    it is plain ASCII letters and digits so escaping, lxml and wrapping leave it intact.
    """

    def __init__(self, settings: Settings, *seed: object) -> None:
        digest = hmac.new(settings.secret_key.encode(), repr(seed).encode(), hashlib.sha256)
        self.nonce = digest.hexdigest()[:12]
        self.pattern = re.compile(rf"DST{self.nonce}_([a-z]+)_")

    def token(self, name: str) -> str:
        return f"DST{self.nonce}_{name}_"

    def split(self, rendered: str) -> _TextParts:
        pieces = self.pattern.split(rendered)
        # re.split alternates literal, captured name, literal, ...
        parts = tuple((i % 2 == 1, piece) for i, piece in enumerate(pieces) if i % 2 == 1 or piece)
        return _TextParts(parts)


def _body_parts(prefix: str, body: _TextParts) -> tuple[bytes, list[bytes | str | Base64Body]]:
    """One body's Content-Transfer-Encoding header and its encoded segments, in whichever
    of quoted-printable and base64 is smaller for its static text (see transfer.py).
    Slots become e.g. "h:greeting" / "t:greeting"."""
    qp: list[bytes | str | Base64Body] = []
    qp_size = raw_size = 0
    for is_slot, value in body.parts:
        if is_slot:
            qp.append(f"{prefix}:{value}")
        else:
            encoded = _qp(value)
            qp.append(encoded)
            qp_size += len(encoded)
            raw_size += len(value.encode("utf-8"))
    if choose(qp_size, raw_size) == QP:
        return b"Content-Transfer-Encoding: quoted-printable\r\n", qp
    return b"Content-Transfer-Encoding: base64\r\n", [Base64Body.build(body.parts, prefix)]


def _encoded_size(segments: Sequence[bytes | str | Base64Body], values: Mapping[str, bytes]) -> int:
    """Bytes of one encoded body with these slot values."""
    return len(_Splice(tuple(segments)).join(values))


def _mime(
    headers: list[bytes | str],
    text: tuple[bytes, list[bytes | str | Base64Body]],
    html: tuple[bytes, list[bytes | str | Base64Body]],
    boundary: str,
) -> _Splice:
    """multipart/alternative (text/plain, then text/html), both UTF-8, each body already
    encoded by `_body_parts` (its encoding header first).

    The boundary starts with "=_", which quoted-printable and base64 can never contain.
    """
    b = boundary.encode("ascii")
    part_head = b"Content-Type: %s; charset=\"utf-8\"\r\n"
    parts: list[bytes | str | Base64Body] = [
        *headers,
        b"MIME-Version: 1.0\r\n",
        b'Content-Type: multipart/alternative; boundary="' + b + b'"\r\n',
        b"\r\n",
        b"--" + b + b"\r\n",
        part_head % b"text/plain",
        text[0],
        b"\r\n",
        *text[1],
        # The CRLF before a boundary belongs to the boundary: keep the body's own last one.
        b"\r\n--" + b + b"\r\n",
        part_head % b"text/html",
        html[0],
        b"\r\n",
        *html[1],
        b"\r\n--" + b + b"--\r\n",
    ]
    return _merged(parts)


def _mime_text(headers: list[bytes | str], text: tuple[bytes, list[bytes | str | Base64Body]]) -> _Splice:
    """A single text/plain part (UTF-8, encoded by `_body_parts`), for text-format readers."""
    parts: list[bytes | str | Base64Body] = [
        *headers,
        b"MIME-Version: 1.0\r\n",
        b'Content-Type: text/plain; charset="utf-8"\r\n',
        text[0],
        b"\r\n",
        *text[1],
    ]
    return _merged(parts)


def _merged(parts: Sequence[bytes | str | Base64Body]) -> _Splice:
    """Adjacent literal segments joined, so a message is few joins."""
    merged: list[bytes | str | Base64Body] = []
    for part in parts:
        if isinstance(part, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += part
        elif part != b"":
            merged.append(part)
    return _Splice(tuple(merged))


# --------------------------------------------------------------------------------------
# Per-recipient values
# --------------------------------------------------------------------------------------


class _Personaliser:
    """Computes a recipient's slot values; holds what is fixed for the whole variant."""

    def __init__(
        self,
        settings: Settings,
        *,
        message_id_prefix: str,
        sign: Callable[[bytes], bytes] | None,
    ) -> None:
        cfg = settings.file.email
        self.greeting_named = cfg.greeting
        self.greeting_anonymous = cfg.greeting_anonymous
        self.default_unsubscribe = f"{settings.public_base_url}/unsubscribe"
        self.default_preferences = f"{settings.public_base_url}/preferences"
        self.domain = cfg.message_id_domain
        self.prefix = message_id_prefix
        self.mailto = parseaddr(cfg.unsubscribe_mailto)[1] if cfg.unsubscribe_mailto else ""
        self.settings = settings
        self.bounce_domain = cfg.bounce_domain
        self._hmac = hmac.new(settings.secret_key.encode(), digestmod=hashlib.sha256)
        self.sign = sign

    def greeting(self, recipient: Recipient | None) -> str:
        name = clean_header_text(recipient.name) if recipient else ""
        return self.greeting_named.replace("{name}", name) if name else self.greeting_anonymous

    def urls(self, recipient: Recipient | None) -> tuple[str, str]:
        if recipient is None:
            return self.default_unsubscribe, self.default_preferences
        return (
            _clean_url(recipient.unsubscribe_url) or self.default_unsubscribe,
            _clean_url(recipient.preferences_url) or self.default_preferences,
        )

    def text_values(self, recipient: Recipient | None) -> dict[str, str]:
        unsubscribe, preferences = self.urls(recipient)
        return {"greeting": self.greeting(recipient), "unsubscribe": unsubscribe, "preferences": preferences}

    def html_values(self, recipient: Recipient | None) -> dict[str, str]:
        return {k: htmllib.escape(v, quote=True) for k, v in self.text_values(recipient).items()}

    def message_id(self, recipient: Recipient, addr: str) -> bytes:
        if recipient.message_id:
            mid = "".join(_CONTROL.sub("", recipient.message_id).split())
            if not _MESSAGE_ID.match(mid) or not mid.isascii():
                raise ValueError(f"not a Message-ID like <id@domain>: {_excerpt(mid)!r}")
        else:
            # Deterministic per (issue, address), keyed so the address cannot be guessed
            # back from the id of a forwarded message.
            digest = self._hmac.copy()
            digest.update(addr.lower().encode("ascii"))
            mid = f"<{self.prefix}.{digest.hexdigest()[:20]}@{self.domain}>"
        return b"Message-ID: " + mid.encode("ascii") + b"\r\n"

    def values(self, recipient: Recipient) -> dict[str, bytes]:
        addr = clean_address(recipient.email)
        unsubscribe, preferences = self.urls(recipient)
        greeting = self.greeting(recipient)
        name = recipient.name
        if name and _ATOMS.match(name) and "=?" not in name and len(name) + len(addr) < HEADER_FOLD_AT - 8:
            to = f"To: {name} <{addr}>\r\n".encode("ascii")  # plain words: no quoting or folding
        elif name:
            to = _header("To", _mailbox_tokens(name, addr))
        else:
            to = b"To: " + addr.encode("ascii") + b"\r\n"
        mailto = self.mailto
        if self.bounce_domain and recipient.delivery_id is not None:
            from distributor.inbound.tokens import address_for

            # Tokenised, so a mail client's unsubscribe names the delivery and is verified.
            mailto = address_for(self.settings, "unsubscribe", recipient.delivery_id)
        unsub_tokens = [f"<{unsubscribe}>" + ("," if mailto else "")]
        if mailto:
            unsub_tokens.append(f"<mailto:{mailto}?subject=unsubscribe>")
        return {
            "to": to,
            "message-id": self.message_id(recipient, addr),
            "list-unsubscribe": _header("List-Unsubscribe", unsub_tokens),
            "t:greeting": _qp(greeting),
            "h:greeting": _qp(htmllib.escape(greeting, quote=True)),
            "t:unsubscribe": _qp(unsubscribe),
            "h:unsubscribe": _qp(htmllib.escape(unsubscribe, quote=True)),
            "t:preferences": _qp(preferences),
            "h:preferences": _qp(htmllib.escape(preferences, quote=True)),
        }


def dkim_signer(settings: Settings) -> Callable[[bytes], bytes] | None:
    """A function that prepends a DKIM-Signature to a finished message, or None when
    DKIM is not configured. Reads and checks the key once; ConfigError if unusable."""
    cfg = settings.file.email
    if not cfg.dkim_enabled:
        return None
    import dkim
    from dkim.crypto import UnparsableKeyError, parse_pem_private_key

    path = Path(cfg.dkim_private_key_file)
    if not path.is_absolute():
        path = settings.config_path.parent / path
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"email.dkim_private_key_file: cannot read {path}: {exc.strerror}") from None
    try:
        parse_pem_private_key(key)
    except (UnparsableKeyError, ValueError, IndexError):
        raise ConfigError(f"email.dkim_private_key_file: {path} is not a PEM RSA private key") from None
    selector = cfg.dkim_selector.encode("ascii")
    domain = cfg.dkim_domain.encode("ascii")

    def sign(message: bytes) -> bytes:
        signature = dkim.sign(
            message,
            selector,
            domain,
            key,
            # Relaxed headers survive refolding by relays; the body is already canonical
            # (CRLF, QP lines without trailing spaces), and simple body canonicalization
            # skips dkimpy's per-line regexes, ~5 ms a 90 KB message here.
            canonicalize=(b"relaxed", b"simple"),
            include_headers=list(DKIM_HEADERS),
            linesep=b"\r\n",
        )
        return signature + message

    return sign


# --------------------------------------------------------------------------------------
# Digest variants
# --------------------------------------------------------------------------------------


def variant_key(sections: Sequence[str] | None) -> tuple[str, tuple[str, ...]]:
    """("all", ()) for every section, else ("nation+sports", ("nation", "sports"))."""
    chosen = tuple(sorted(set(sections or ())))
    return ("+".join(chosen) if chosen else "all"), chosen


def _preheader(edition: Edition) -> str:
    """Inbox preview text: the headlines after the one already in the Subject."""
    articles = edition.articles
    others = [a.title for a in articles[1:4]]
    if others:
        text = "Also: " + " · ".join(others)
    else:
        text = articles[0].standfirst if articles else ""
    return shorten(text, PREHEADER_MAX, measure=graphemes)


def render_variant(
    settings: Settings,
    edition: Edition,
    *,
    sections: Sequence[str] | None,
    run_id: int | None,
    now: datetime,
    subject_prefix: str = "",
    archive: bool = False,
) -> RenderedVariant:
    """Render one variant of an issue: Jinja, premailer and MIME encoding, once.

    `sections`: the reader's section slugs (None or empty: all). `run_id`: the issue's
    run (None in previews: no "View in browser" link). `now`: the Date header.
    `subject_prefix`: put before the Subject (a console test send's "[Test] ").
    `archive`: the public archive's page: no greeting, no footer or personal links, no
    "View in browser", and a subscribe box instead (its HTML has no per-recipient slots).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (it becomes the Date header)")
    key, chosen = variant_key(sections)
    variant = edition.for_sections(chosen)
    cfg = settings.file.email
    issued = edition.window.end.astimezone(settings.tz)
    params = utm_params(settings, edition.name, issued.date())
    home = settings.site.base_url

    def link(url: str) -> str:
        return add_utm(url if is_web_url(url) else home, params)

    def article_link(article: Article) -> str:
        # Through /c/{token} when click tracking is on: the token names the article, run
        # and channel, nothing personal, so it is the same for every reader of a variant.
        # An issue with a run gets short links (short_clicks.py; at most 80 characters).
        if run_id is not None and settings.file.trending.click_tracking:
            return short_url(settings, article, run_id)
        return tracked_url(settings, article, run_id=run_id, channel="email", target=link(article.url))

    slots = _Slots(settings, "digest", edition.name, edition.window.start, edition.window.end, key, run_id)
    articles = variant.articles
    top = articles[0] if articles else None
    prefix = str(run_id) if run_id is not None else f"preview{int(now.timestamp())}"
    personal = _Personaliser(settings, message_id_prefix=f"{prefix}.{edition.name}", sign=dkim_signer(settings))
    # The HTML part is measured with the generic greeting and links in the slots.
    generic = {f"h:{k}": _qp(v) for k, v in personal.html_values(None).items()}
    budget = cfg.html_budget_bytes - PERSONAL_RESERVE_BYTES

    def draft(trim: Trim) -> tuple[str, str, str, _TextParts, tuple[bytes, list], int]:
        shown = keep_first(variant, len(articles) - trim.articles)
        keys = [a.key for a in shown.articles]
        context = {
            "site": settings.site,
            "edition": shown,
            "issued": issued,
            "archive_url": f"{settings.public_base_url}/archive/{run_id}" if run_id is not None else None,
            "link": link,
            "article_link": article_link,
            "section_labels": {s.slug: s.label for s in settings.sections},
            # Image boxes from each article's declared size (email_images.py).
            "hero_box": lambda a: hero_box(a, cfg.image_width, cfg.image_height),
            "thumb_box": lambda a: thumb_box(a, cfg.image_width, cfg.image_height),
            "standfirst_chars": CARD_STANDFIRST_CHARS,
            "lead": shown.articles[0] if shown.articles else None,
            "section_line": (["Trending"] if shown.trending else []) + [g.section.label for g in shown.groups],
            "article_language": lambda a: article_language(a, settings.site.language),
            # The Subject names the whole variant, trimmed or not.
            "top": top,
            "more": len(articles) - 1 if top else 0,
            "headline_chars": cfg.subject_headline_chars,
            "preheader": _preheader(variant),
            "no_thumbnail": frozenset(keys[max(len(keys) - trim.thumbnails, 0) :] if trim.thumbnails else ()),
            "no_standfirst": frozenset(keys[max(len(keys) - trim.standfirsts, 0) :] if trim.standfirsts else ()),
            "archive": archive,
            "subscribe_url": f"{settings.public_base_url}/subscribe",
            "greeting": slots.token("greeting"),
            "unsubscribe_url": slots.token("unsubscribe"),
            "preferences_url": slots.token("preferences"),
        }
        subject, html, text = _render_message("subject.txt", "digest.html", "digest.txt", context)
        html_parts = slots.split(html)
        body = _body_parts("h", html_parts)
        return subject, html, text, html_parts, body, _encoded_size(body[1], generic)

    trim = Trim()
    subject, html, text, html_parts, html_body, size = draft(trim)
    first_size = size
    while size > budget:
        lighter = next_trim(trim, len(articles), size, budget)
        if lighter is None:
            log.error(
                "digest %s variant %s: HTML part %d bytes is over the %d-byte budget even with one article",
                edition.name, key, size, cfg.html_budget_bytes,
            )
            break
        trim = lighter
        subject, html, text, html_parts, html_body, size = draft(trim)
    if trim.any:
        log.warning(
            "digest %s variant %s: HTML part %d bytes over the %d-byte budget; sent at %d bytes with %s",
            edition.name, key, first_size + PERSONAL_RESERVE_BYTES, cfg.html_budget_bytes,
            size + PERSONAL_RESERVE_BYTES, trim.describe(),
        )
    subject = subject_prefix + subject
    text_parts = slots.split(text)

    list_name = f"{settings.site.name} {edition.label}"
    list_id = cfg.list_id.format(edition=edition.name)
    headers: list[bytes | str] = [_mailbox_header("From", mailbox_from(settings))]
    if cfg.reply_to:
        headers.append(_mailbox_header("Reply-To", cfg.reply_to))
    headers += [
        "to",
        _header("Subject", _text_tokens(subject)),
        _header("Date", [format_datetime(now.astimezone(settings.tz))]),
        "message-id",
        _header("List-Id", [*_phrase_tokens(list_name), f"<{list_id}>"]),
        "list-unsubscribe",
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        _header("Feedback-ID", [feedback_id(settings, edition.name, run_id)]),
    ]
    boundary = "=_" + hashlib.sha256((html + text).encode("utf-8")).hexdigest()[:28]
    text_body = _body_parts("t", text_parts)
    return RenderedVariant(
        key=key,
        sections=chosen,
        subject=subject,
        html=html,
        text=text,
        count=len(articles),
        run_id=run_id,
        _splice=_mime(headers, text_body, html_body, boundary),
        _text_splice=_mime_text(headers, text_body),
        _html_parts=html_parts,
        _text_parts=text_parts,
        _personal=personal,
    )


# --------------------------------------------------------------------------------------
# Confirmation email (double opt-in)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Confirmation:
    splice: _Splice
    sign: Callable[[bytes], bytes] | None
    domain: str
    secret: bytes
    tz: object


_CONFIRMATIONS: weakref.WeakKeyDictionary[Settings, dict[int | None, _Confirmation]] = weakref.WeakKeyDictionary()


def _confirmation(settings: Settings, valid_hours: int | None) -> _Confirmation:
    """The confirmation email rendered and inlined once per Settings (per validity)."""
    cached = _CONFIRMATIONS.setdefault(settings, {})
    if valid_hours in cached:
        return cached[valid_hours]
    slots = _Slots(settings, "confirm", valid_hours)
    home = settings.site.base_url
    context = {
        "site": settings.site,
        "link": lambda url: add_utm(url if is_web_url(url) else home, ()),
        "valid_hours": valid_hours,
        "confirm_url": slots.token("confirm"),
        "address": slots.token("address"),
    }
    subject, html, text = _render_message("confirm_subject.txt", "confirm.html", "confirm.txt", context)
    cfg = settings.file.email
    headers: list[bytes | str] = [_mailbox_header("From", mailbox_from(settings))]
    if cfg.reply_to:
        headers.append(_mailbox_header("Reply-To", cfg.reply_to))
    headers += ["to", _header("Subject", _text_tokens(subject)), "date", "message-id"]
    html_parts, text_parts = slots.split(html), slots.split(text)
    boundary = "=_" + hashlib.sha256((html + text).encode("utf-8")).hexdigest()[:28]
    made = _Confirmation(
        splice=_mime(headers, _body_parts("t", text_parts), _body_parts("h", html_parts), boundary),
        sign=dkim_signer(settings),
        domain=cfg.message_id_domain,
        secret=settings.secret_key.encode(),
        tz=settings.tz,
    )
    cached[valid_hours] = made
    return made


def render_confirmation(
    settings: Settings,
    *,
    email: str,
    confirm_url: str,
    now: datetime,
    valid_hours: int | None = None,
    name: str = "",
) -> bytes:
    """The complete double opt-in confirmation message for `email`, CRLF line ends.

    `name`: the name the reader gave, if any; it goes in To ("Asha Rao <asha@...>").

    `valid_hours` (e.g. web.confirm_max_age_hours) is stated in the text when given.
    The template is rendered and inlined once per settings; each call only fills in.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (it becomes the Date header)")
    made = _confirmation(settings, valid_hours)
    addr = clean_address(email)
    url = _clean_url(confirm_url)
    if not url:
        raise ValueError("confirm_url is required")
    digest = hmac.new(made.secret, addr.lower().encode("ascii"), hashlib.sha256).hexdigest()[:20]
    values = {
        "to": _header("To", _mailbox_tokens(name, addr)),
        "date": _header("Date", [format_datetime(now.astimezone(made.tz))]),  # type: ignore[arg-type]
        "message-id": f"Message-ID: <confirm.{int(now.timestamp())}.{digest}@{made.domain}>\r\n".encode("ascii"),
        "t:confirm": _qp(url),
        "h:confirm": _qp(htmllib.escape(url, quote=True)),
        "t:address": _qp(addr),
        "h:address": _qp(htmllib.escape(addr, quote=True)),
    }
    message = made.splice.join(values)
    return made.sign(message) if made.sign else message
