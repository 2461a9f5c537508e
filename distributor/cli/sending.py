"""Commands of this group are added to `app` here."""

from distributor.cli.core import app  # noqa: F401
