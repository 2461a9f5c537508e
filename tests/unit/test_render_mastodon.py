"""Mastodon statuses: length as Mastodon counts it (graphemes, URLs as 23), cuts at the limit."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from mastodon.errors import MastodonAPIError, MastodonNetworkError, MastodonRatelimitError, MastodonServerError

from distributor.articles import Article
from distributor.channels.mastodon import classify
from distributor.render.mastodon import article_status, hashtag, status_length, thread_statuses
from distributor.text import graphemes

NOW = datetime(2026, 11, 27, 6, 30, tzinfo=timezone.utc)
LINK = "https://www.newsarenaindia.com/sports/" + "a" * 120


def article(**fields) -> Article:
    values = {"key": "k", "url": LINK, "title": "India win the series", "section": "sports",
              "published_at": NOW, "standfirst": "A standfirst."}
    values.update(fields)
    return Article(**values)


def test_urls_count_23_and_clusters_count_one():
    assert status_length(LINK) == 23
    assert status_length(f"see {LINK} now") == 4 + 23 + 4
    assert status_length("👨‍👩‍👧 क्षि") == graphemes("👨‍👩‍👧 क्षि") == 3


@pytest.mark.parametrize(("label", "tag"), [("Sports", "#Sports"), ("World news", "#WorldNews"),
                                            ("खेल समाचार", "#खेलसमाचार"), ("2024", ""), ("—", "")])
def test_hashtag_from_section_label(label, tag):
    assert hashtag(label) == tag


def test_status_has_headline_standfirst_link_and_hashtag(settings):
    text = article_status(settings, article())
    assert text == f"India win the series\n\nA standfirst.\n\n{LINK}\n\n#Sports"


@pytest.mark.parametrize("limit", [60, 80, 100, 140, 500])
@pytest.mark.parametrize("filler", ["संसद में बहस जारी, विपक्ष ने वॉकआउट किया ", "🇮🇳👋🏽 गोल ", "word " ])
def test_cut_to_fit_the_instance_limit_at_whole_clusters(settings, limit, filler):
    text = article_status(settings, article(title="Title " + filler * 3, standfirst=filler * 40),
                          max_characters=limit)
    assert status_length(text) <= limit
    assert text.endswith(f"{LINK}\n\n#Sports")
    if "…" in text:
        head = text.split("…")[0]
        assert not head.endswith(("\u094d", "\u200d", "\U0001f1ee"))  # no half conjunct, ZWJ, half flag


def test_thread_parts_fit_and_are_numbered(settings):
    articles = [article(key=f"a{i}", title=f"{i} " + "संसद में बहस जारी 🇮🇳 " * 3) for i in range(12)]
    parts = thread_statuses("News Arena · Morning", articles, max_characters=200)
    assert len(parts) > 1
    assert all(status_length(p) <= 200 for p in parts)
    assert all(p.endswith(f"({n}/{len(parts)})") for n, p in enumerate(parts, 1))
    assert parts[0].startswith("News Arena · Morning")
    assert sum(p.count(LINK) for p in parts) == 12


def test_errors_classified():
    assert classify(MastodonRatelimitError("Hit rate limit."), reset=1030.0, now=1000.0).retry_after == 30.0
    assert classify(MastodonServerError("x", 503, "Unavailable", None)).outcome == "temporary"
    assert classify(MastodonAPIError("x", 403, "Forbidden", "suspended")).outcome == "permanent"
    assert classify(MastodonAPIError("x", 422, "Unprocessable", "too long")).outcome == "rejected"
    assert classify(MastodonNetworkError("read timed out")).outcome == "ambiguous"
