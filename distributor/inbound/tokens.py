"""The addresses that bring mail back: bounces+TOKEN@ and unsubscribe+TOKEN@ the bounce domain.

TOKEN is a delivery id and a truncated HMAC-SHA256 of it under SECRET_KEY, in lower-case
base32 (local parts may be case-folded by relays, and base32 survives that). Each
purpose has its own key, so the return-path token a reader can see in their headers
cannot be sent on to the unsubscribe address. 8 bytes of MAC: a forger must guess 2^64.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from distributor.settings import Settings

Purpose = Literal["bounces", "unsubscribe"]
PURPOSES: tuple[Purpose, ...] = ("bounces", "unsubscribe")
MAC_BYTES = 8
# The longest token we make: a 64-bit id and the MAC, base32 of 16 bytes.
TOKEN_MAX = 26
_LOCAL = re.compile(r"^(bounces|unsubscribe)\+([a-z2-7]{14,26})$")


@dataclass(frozen=True)
class Address:
    """What an inbound recipient address says: its purpose and, when it verifies, the delivery."""

    purpose: Purpose
    delivery_id: int | None  # None: the plain purpose address (no token), e.g. a feedback loop's


@lru_cache(maxsize=8)
def _key(secret: str, purpose: str) -> bytes:
    return hashlib.sha256(f"distributor.inbound.{purpose}\0".encode() + secret.encode()).digest()


def _mac(settings: Settings, purpose: str, raw_id: bytes) -> bytes:
    return hmac.new(_key(settings.secret_key, purpose), raw_id, hashlib.sha256).digest()[:MAC_BYTES]


def make_token(settings: Settings, purpose: Purpose, delivery_id: int) -> str:
    """The token for one delivery and purpose: 14 to 26 lower-case base32 characters."""
    if delivery_id < 0:
        raise ValueError("delivery id must not be negative")
    raw_id = delivery_id.to_bytes(max(1, (delivery_id.bit_length() + 7) // 8), "big")
    return base64.b32encode(raw_id + _mac(settings, purpose, raw_id)).decode("ascii").rstrip("=").lower()


def read_token(settings: Settings, purpose: Purpose, token: str) -> int | None:
    """The delivery id a token was made for, or None when it is not ours (forged, changed,
    made for the other purpose, or malformed)."""
    token = token.strip().lower()
    if not 14 <= len(token) <= TOKEN_MAX or not re.fullmatch(r"[a-z2-7]+", token):
        return None
    try:
        raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
    except (binascii.Error, ValueError):
        return None
    # Only the canonical spelling: base32's last character carries spare bits, and a
    # token that differs in them is a different address that must not verify.
    if base64.b32encode(raw).decode("ascii").rstrip("=").lower() != token:
        return None
    raw_id, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if not raw_id or not hmac.compare_digest(mac, _mac(settings, purpose, raw_id)):
        return None
    return int.from_bytes(raw_id, "big")


def address_for(settings: Settings, purpose: Purpose, delivery_id: int) -> str:
    """bounces+TOKEN@domain or unsubscribe+TOKEN@domain; ValueError if no bounce domain."""
    domain = settings.file.email.bounce_domain
    if not domain:
        raise ValueError("email.bounce_domain is not set")
    return f"{purpose}+{make_token(settings, purpose, delivery_id)}@{domain}"


def parse_address(settings: Settings, address: str) -> Address | None:
    """What an address at the bounce domain is for, or None when it is not one of ours
    (another domain, another local part, or a token that does not verify)."""
    domain = settings.file.email.bounce_domain
    local, at, host = address.strip().strip("<>").rpartition("@")
    if not at or not domain or host.lower().rstrip(".") != domain:
        return None
    local = local.lower()
    if local in PURPOSES:
        return Address(local, None)  # type: ignore[arg-type]
    match = _LOCAL.match(local)
    if not match:
        return None
    purpose: Purpose = match.group(1)  # type: ignore[assignment]
    delivery_id = read_token(settings, purpose, match.group(2))
    return Address(purpose, delivery_id) if delivery_id is not None else None


def find_tokens(settings: Settings, text: str) -> list[Address]:
    """Every verified bounces+/unsubscribe+ address in a text (quoted original headers)."""
    domain = settings.file.email.bounce_domain
    if not domain:
        return []
    found: list[Address] = []
    pattern = re.compile(r"((?:bounces|unsubscribe)\+[A-Za-z2-7]{14,26})@" + re.escape(domain), re.IGNORECASE)
    for match in pattern.finditer(text):
        parsed = parse_address(settings, f"{match.group(1)}@{domain}")
        if parsed is not None and parsed.delivery_id is not None and parsed not in found:
            found.append(parsed)
    return found
