"""Reading a feed from a file path or an http(s) URL, the only network I/O of ingest."""

from __future__ import annotations

from dataclasses import dataclass

from distributor.settings import IngestConfig


@dataclass(frozen=True)
class Validators:
    """Conditional-GET validators remembered from the previous fetch."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FetchResult:
    """`body` is None when the server answered 304 Not Modified (nothing to do)."""

    body: bytes | None
    base_url: str  # final URL after redirects (or file:// URL), for resolving relative links
    validators: Validators


def fetch(location: str, *, config: IngestConfig, validators: Validators | None = None) -> FetchResult:
    """Read a feed. Raises distributor.errors.FeedError with the reason when it cannot."""
    raise NotImplementedError
