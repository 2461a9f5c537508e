"""Exceptions of the distributor domain.

Each carries the context a reader needs (what was being done, what came back) and also
subclasses the matching builtin, so callers can catch either.
"""

from __future__ import annotations


class DistributorError(Exception):
    """Base of every error the domain raises on purpose."""


class ConfigError(DistributorError, ValueError):
    """The configuration file or the environment holds a bad key or value."""


class FeedError(DistributorError, IOError):
    """A whole feed could not be read or parsed; other sources are unaffected."""

    def __init__(self, source: str, reason: str, *, status: int | None = None) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
        # The HTTP status of the last response, when one came back (feed health shows it).
        self.status = status


class RejectedItem(DistributorError, ValueError):
    """One feed item or webhook payload could not become an article."""

    def __init__(self, reason: str, item_ref: str = "") -> None:
        super().__init__(f"{item_ref}: {reason}" if item_ref else reason)
        self.reason = reason
        self.item_ref = item_ref


class SignatureError(DistributorError, PermissionError):
    """A signed request or token failed verification."""


class TemporaryFailure(DistributorError, RuntimeError):
    """Worth retrying later: a server was away or asked us to wait."""
