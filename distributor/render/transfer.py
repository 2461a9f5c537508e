"""Content-Transfer-Encoding of a spliced body: quoted-printable or base64, by size.

Quoted-printable writes every byte of a non-ASCII character as "=XX": a Devanagari
letter (3 UTF-8 bytes) costs 9 bytes, so a Hindi digest grows by ~2.5x and Gmail clips it
(near 102 KB) with the footer and its Unsubscribe link. base64 costs 4/3 for any text. A
body is encoded in base64 when that is clearly smaller for its static text (`choose`).

A base64 body is spliced per recipient like a quoted-printable one, with one twist: a
base64 stream can only be cut at 3-byte boundaries (padding "=" may only end it). So every
static segment is pre-encoded three times, starting 0, 1 or 2 bytes into it, each ending
at its last whole 3-byte group with the leftover bytes kept raw. Per recipient, the bytes
carried from the previous segment, the value and the next segment's first 0-2 bytes are
encoded together (a few dozen bytes), then the matching pre-encoded middle is appended.
Lines are at most 76 characters (RFC 2045); shorter ones, as at each joint, are allowed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

QP = "quoted-printable"
BASE64 = "base64"
# base64 is chosen only when at least this much smaller than quoted-printable: near a
# tie, QP keeps mostly-ASCII text readable in the raw message and clear of spam filters'
# "text disguised as base64" rules, and the choice does not flip with every issue.
BASE64_MARGIN = 0.9
# base64.encodebytes writes 57 input bytes as one 76-character line.
_B64_LINE_BYTES = 57


def b64_lines(data: bytes) -> bytes:
    """base64 in CRLF-terminated lines of at most 76 characters ("" for no data)."""
    if not data:
        return b""
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def b64_size(raw_bytes: int) -> int:
    """Encoded size of `raw_bytes` bytes as b64_lines writes them."""
    chars = 4 * ((raw_bytes + 2) // 3)
    return chars + 2 * ((raw_bytes + _B64_LINE_BYTES - 1) // _B64_LINE_BYTES)


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")


@dataclass(frozen=True, slots=True)
class _Static:
    raw: bytes
    # For a start offset k of 0, 1 or 2: (encoded middle, raw bytes left after it).
    middles: tuple[tuple[bytes, bytes], ...]


def _static(raw: bytes) -> _Static:
    middles = []
    for k in range(3):
        body = raw[k:]
        whole = len(body) - len(body) % 3
        middles.append((b64_lines(body[:whole]), body[whole:]))
    return _Static(raw, tuple(middles))


@dataclass(frozen=True, slots=True)
class Base64Body:
    """One base64 body as pre-encoded static text and named per-recipient slots.

    Slot values arrive quoted-printable encoded (the form `_Personaliser` computes for
    every body); they are decoded back here, a C call on a few dozen bytes.
    """

    pieces: tuple[_Static | str, ...]

    @classmethod
    def build(cls, parts: tuple[tuple[bool, str], ...], prefix: str) -> Base64Body:
        """From a rendered body's (is_slot, literal or slot name) parts. Line ends become
        CRLF first: base64 text is encoded in canonical form (RFC 2045 section 6.8)."""
        return cls(tuple(f"{prefix}:{v}" if is_slot else _static(_crlf(v).encode("utf-8")) for is_slot, v in parts))

    def encode(self, values: Mapping[str, bytes]) -> bytes:
        out: list[bytes] = []
        carry = b""
        for piece in self.pieces:
            if piece.__class__ is str:
                carry += binascii.a2b_qp(values[piece])  # type: ignore[index]
                continue
            raw, middles = piece.raw, piece.middles  # type: ignore[union-attr]
            k = -len(carry) % 3
            if k > len(raw):
                carry += raw  # a literal shorter than the bytes the joint needs
                continue
            if carry or k:
                out.append(b64_lines(carry + raw[:k]))
            middle, carry = middles[k]
            out.append(middle)
        out.append(b64_lines(carry))
        return b"".join(out)


def choose(qp_bytes: int, raw_bytes: int) -> str:
    """The transfer encoding for a body: base64 when it is clearly smaller (by
    BASE64_MARGIN), else quoted-printable."""
    return BASE64 if b64_size(raw_bytes) < qp_bytes * BASE64_MARGIN else QP
