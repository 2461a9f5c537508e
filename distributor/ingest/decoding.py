"""Undoing a response's Content-Encoding in bounded steps, so a compression bomb stops at the cap.

A general-purpose HTTP client inflates each network read whole: 64 KB of gzip'd zeros
becomes 64 MB in memory before anyone can count it. Here every decompression step
produces at most `STEP` bytes, and the caller counts each step against its size cap, so
a response that inflates past the cap is refused having held at most the cap plus one
step (and the compressed read that is being worked through).

Pure: bytes in, bytes out; `fetch` feeds it the raw stream.
"""

from __future__ import annotations

import zlib
from typing import Generator, Iterable, Iterator, Protocol

# Most decoded bytes one step may produce: the overshoot past the cap, at worst.
STEP = 64 * 1024
# The codings we decode, as we announce them in Accept-Encoding. brotli and zstd need
# libraries we do not ship; asking only for these keeps servers from sending others.
ACCEPT_ENCODING = "gzip, deflate"
# A response may stack codings ("deflate, gzip"); each layer is bounded, but a long
# stack is never legitimate.
MAX_CODINGS = 3
_ALIASES = {"x-gzip": "gzip"}
_DECODED = frozenset({"gzip", "deflate"})
# Registered codings we cannot undo: refused by name rather than handed to the parser as
# binary. Any other unknown token is treated as identity (servers send "none", "utf-8"...),
# which is also what browsers and httpx do.
_UNDECODABLE = frozenset({"br", "zstd", "compress", "x-compress", "x-bzip2", "bzip2", "lzma", "xz", "exi", "pack200-gzip", "aes128gcm"})
_GZIP_MAGIC = b"\x1f\x8b"


class UnsupportedEncoding(ValueError):
    """The response uses a Content-Encoding we cannot decode."""


class DecodeError(ValueError):
    """The encoded body is corrupt; the message names the coding."""


class _Stage(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def flush(self) -> Iterator[bytes]: ...


class _Inflater:
    """One gzip or deflate layer, inflated at most STEP bytes at a time.

    gzip: concatenated members are one stream (RFC 1952 2.2), so a new member after the
    end of one is decoded too; other trailing bytes (padding) are ignored, as gzip(1) does.
    deflate: RFC 9110 means the zlib format, but some servers send raw deflate; the zlib
    header (two bytes whose value is a multiple of 31, method 8) tells them apart.
    """

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self.engine: zlib._Decompress | None = None
        self.pending = b""  # bytes held until we can tell what follows (header, next member)
        self.finished = False  # the current stream ended
        self.trailing = False  # what follows the end is padding: ignore the rest

    def _start(self, head: bytes) -> zlib._Decompress:
        if self.coding == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        cmf, flg = head[0], head[1]
        zlib_header = cmf & 0x0F == 8 and (cmf * 256 + flg) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        # A loop, not recursion: one read may hold thousands of tiny gzip members.
        while data and not self.trailing:
            if self.engine is None or self.finished:
                data = self.pending + data
                if len(data) < 2:
                    self.pending = data
                    return
                self.pending = b""
                if self.finished:
                    if self.coding != "gzip" or not data.startswith(_GZIP_MAGIC):
                        self.trailing = True
                        return
                    self.finished = False
                self.engine = self._start(data)
            data = yield from self._inflate(data)

    def _inflate(self, data: bytes) -> Generator[bytes, None, bytes]:
        """Inflate `data` step by step; return what follows the end of the stream, if any."""
        engine = self.engine
        while True:
            try:
                out = engine.decompress(data, STEP)
            except zlib.error as exc:
                raise DecodeError(f"cannot decode the {self.coding} response: {exc}") from None
            if out:
                yield out
            if engine.eof:
                self.finished = True
                return engine.unused_data
            data = engine.unconsumed_tail
            # A full step may leave output inside zlib even when all input is consumed.
            if not data and len(out) < STEP:
                return b""

    def flush(self) -> Iterator[bytes]:
        # A stream cut short gives what it had, as other clients do: the feed parser
        # then judges the document. Input is all consumed, so this is at most a few bytes.
        if self.engine is not None and not self.finished:
            try:
                out = self.engine.flush()
            except zlib.error as exc:
                raise DecodeError(f"cannot decode the {self.coding} response: {exc}") from None
            if out:
                yield out


class Decoder:
    """Decodes one response body: `feed` each raw read, then `finish`; yields chunks of at
    most STEP bytes (an identity body passes through as read)."""

    def __init__(self, codings: tuple[str, ...]) -> None:
        self.codings = codings
        # Content-Encoding lists codings in the order they were applied: undo from the end.
        self.stages: list[_Stage] = [_Inflater(c) for c in reversed(codings)]

    @classmethod
    def for_header(cls, content_encoding: str) -> Decoder:
        """The decoder for a Content-Encoding header; UnsupportedEncoding names a coding we
        cannot undo."""
        codings = []
        for token in content_encoding.lower().split(","):
            coding = _ALIASES.get(token.strip(), token.strip())
            if coding in _DECODED:
                codings.append(coding)
            elif coding in _UNDECODABLE:
                raise UnsupportedEncoding(
                    f"unsupported Content-Encoding {coding!r} (we accept {ACCEPT_ENCODING})"
                )
        if len(codings) > MAX_CODINGS:
            raise UnsupportedEncoding(
                f"Content-Encoding stacks {len(codings)} codings (at most {MAX_CODINGS})"
            )
        return cls(tuple(codings))

    @property
    def encoded(self) -> bool:
        return bool(self.stages)

    def feed(self, raw: bytes) -> Iterator[bytes]:
        return _through(self.stages, (raw,))

    def finish(self) -> Iterator[bytes]:
        for index, stage in enumerate(self.stages):
            yield from _through(self.stages[index + 1 :], stage.flush())


def _through(stages: list[_Stage], chunks: Iterable[bytes]) -> Iterator[bytes]:
    # Generators all the way down: each layer holds one chunk at a time, so the bound of
    # STEP per step holds for every layer of a stacked encoding.
    for stage in stages:
        chunks = _feed_each(stage, chunks)
    return iter(chunks)


def _feed_each(stage: _Stage, chunks: Iterable[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        yield from stage.feed(chunk)
