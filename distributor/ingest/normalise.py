"""Pure normalisation rules: one raw item (from any feed format or the webhook) -> Article.

Nothing here does I/O. Every rule is a small function with its own tests.
"""

from __future__ import annotations

from datetime import datetime
from typing import Mapping

from distributor.articles import Article
from distributor.settings import Settings


def article_from_mapping(
    data: Mapping, *, settings: Settings, source: str, base_url: str, now: datetime
) -> Article:
    """Build an Article from the webhook's JSON fields (documented in README).

    Raises distributor.errors.RejectedItem naming the bad or missing field.
    """
    raise NotImplementedError
