"""Short click links for email: `/c/{run}_{ref}{mac}`, at most 80 characters in all.

The signed click tokens of `trending.click_token` carry the article key and the whole
target URL: 200-290 characters a link, which made the text part unreadable and the HTML
part heavy. An email issue's links are all to articles of one stored run, so a short
token only needs to name the run (base 36) and which of its articles (`ref`: 48 bits of
a digest of the article key, unique among one run's few dozen articles), with an
HMAC-SHA256 over both, truncated to 96 bits, keyed with SECRET_KEY (a token cannot be
made or altered without it, as before). The server looks the run up, finds the article
whose key has that digest, and rebuilds the target exactly as the renderer did: the
article's URL with the issue's UTM parameters. No table, and rendering stays pure.

Used for links in email issues with a run; previews (no run) and Telegram posts keep the
self-contained signed tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import TYPE_CHECKING

from distributor.trending import CLICK_SALT, Click, ClickRefused

if TYPE_CHECKING:
    from distributor.articles import Article
    from distributor.settings import Settings
    from distributor.store import Store

# 6 bytes of the article key's SHA-256 (8 base64url characters) and 12 bytes of the MAC
# (16 characters): with a run id in base 36, a token is ~27 characters.
REF_BYTES = 6
MAC_BYTES = 12
# The MAC's own domain: never the same as a signed token's or any other signature's.
SHORT_SALT = CLICK_SALT + ".short"
SHORT_TOKEN = re.compile(r"^([0-9a-z]{1,13})_([A-Za-z0-9_-]{8})([A-Za-z0-9_-]{16})$")
# The one channel short links are made for.
CHANNEL = "email"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


def key_ref(article_key: str) -> str:
    """The 8-character reference of an article key inside one run."""
    return _b64(hashlib.sha256(article_key.encode("utf-8")).digest()[:REF_BYTES])


def _mac(secret: str, run: str, ref: str) -> str:
    message = f"{SHORT_SALT}|{run}|{ref}".encode("ascii")
    return _b64(hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()[:MAC_BYTES])


def short_token(settings: Settings, article_key: str, run_id: int) -> str:
    """The short token for `article_key` in email issue `run_id`."""
    if run_id < 0:
        raise ValueError("run_id must not be negative")
    run, ref = _base36(run_id), key_ref(article_key)
    return f"{run}_{ref}{_mac(settings.secret_key, run, ref)}"


def short_url(settings: Settings, article: Article, run_id: int) -> str:
    """`{PUBLIC_BASE_URL}/c/{short token}` for an article of email issue `run_id`."""
    return f"{settings.public_base_url}/c/{short_token(settings, article.key, run_id)}"


def is_short(token: str) -> bool:
    return bool(SHORT_TOKEN.match(token))


def resolve_short(settings: Settings, store: Store, token: str) -> tuple[Click, Article | None, str]:
    """(click, article, target) of a short token, or ClickRefused. The MAC is checked
    before anything is read from the database."""
    from distributor.render.email import add_utm, is_web_url, utm_params
    from distributor.store.articles import articles_by_keys
    from distributor.store.models import EditionRunRow

    match = SHORT_TOKEN.match(token)
    if match is None:
        raise ClickRefused("link token not valid")
    run, ref, mac = match.groups()
    if not hmac.compare_digest(mac, _mac(settings.secret_key, run, ref)):
        raise ClickRefused("link token not valid")
    run_id = int(run, 36)
    with store.session() as session:
        row = session.get(EditionRunRow, run_id)
        if row is None:
            raise ClickRefused("link's issue is gone")
        edition, window_end = row.edition, row.window_end
        layout = row.layout or {}
        keys = [*(row.article_keys or ()), *layout.get("trending", ())]
        keys += [k for _, section_keys in layout.get("sections", ()) for k in section_keys]
    key = next((k for k in keys if isinstance(k, str) and key_ref(k) == ref), None)
    found = articles_by_keys(store, [key]) if key else []
    if not found:
        raise ClickRefused("link's article is gone")
    article = found[0]
    # As render_variant built it: the article URL (the site's home for one without a
    # usable URL) with the UTM parameters.
    home = settings.site.base_url
    params = utm_params(settings, edition, window_end.astimezone(settings.tz).date())
    target = add_utm(article.url if is_web_url(article.url) else home, params)
    return Click(article.key, target, run_id, CHANNEL), article, target
