"""Bluesky records: 300 graphemes and 3,000 bytes, link facets by byte offsets, record keys."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from distributor.articles import Article
from distributor.delivery.social import record_key
from distributor.render.bluesky import article_post, link_text, thread_posts
from distributor.text import graphemes, utf8_bytes

NOW = datetime(2026, 11, 27, 6, 30, tzinfo=timezone.utc)
LINK = "https://www.newsarenaindia.com/sports/india-win-the-series-" + "x" * 80


def article(**fields) -> Article:
    values = {"key": "k", "url": LINK, "title": "India win the series", "section": "sports",
              "published_at": NOW, "standfirst": "A standfirst."}
    values.update(fields)
    return Article(**values)


def facet_texts(record) -> list[tuple[str, str]]:
    data = record["text"].encode("utf-8")
    return [(data[f["index"]["byteStart"]:f["index"]["byteEnd"]].decode("utf-8"), f["features"][0]["uri"])
            for f in record["facets"]]


def test_post_has_link_facet_card_and_langs(settings):
    record = article_post(settings, article())
    assert record["text"] == f"India win the series\n\nA standfirst.\n\n{link_text(LINK)}"
    assert link_text(LINK).startswith("newsarenaindia.com/sports/") and link_text(LINK).endswith("…")
    assert facet_texts(record) == [(link_text(LINK), LINK)]
    assert record["embed"]["external"] == {"uri": LINK, "title": "India win the series", "description": "A standfirst."}
    assert record["langs"] == ["en"]


@pytest.mark.parametrize("filler", ["संसद में बहस जारी ", "👨‍👩‍👧", "क्षि", "word "])
def test_within_300_graphemes_and_3000_bytes_facet_inside(settings, filler):
    record = article_post(settings, article(title=filler * 300, standfirst=filler * 900))
    text = record["text"]
    assert graphemes(text) <= 300 and utf8_bytes(text) <= 3000
    [(shown, url)] = facet_texts(record)
    assert text.endswith(shown) and url == LINK


def test_thread_posts_fit_and_link_each_headline(settings):
    articles = [article(key=f"a{i}", url=f"{LINK}{i}", title=f"{i} " + "संसद में बहस जारी 🇮🇳 " * 4) for i in range(15)]
    posts = thread_posts(settings, "News Arena · Morning", articles)
    assert len(posts) > 1
    assert all(graphemes(p["text"]) <= 300 and utf8_bytes(p["text"]) <= 3000 for p in posts)
    links = [pair for p in posts for pair in facet_texts(p)]
    assert [url for _, url in links] == [f"{LINK}{i}" for i in range(15)]
    assert all(shown.startswith(f"{i} ") for i, (shown, _) in enumerate(links))


def test_record_keys_are_tids_stable_and_distinct():
    keys = {record_key(NOW, row, part) for row in range(1, 40) for part in range(1, 6)}
    assert len(keys) == 39 * 5
    assert all(len(k) == 13 and set(k) <= set("234567abcdefghijklmnopqrstuvwxyz") for k in keys)
    assert record_key(NOW, 7, 2) == record_key(NOW, 7, 2)
    assert record_key(NOW, 7, 1) < record_key(NOW, 7, 2)  # a thread's parts sort in order


def test_a_hindi_article_is_posted_as_hindi(settings):
    record = article_post(settings, article(title="मानसून: मौसम विभाग ने 10 राज्यों में अलर्ट जारी किया",
                                            standfirst="भारी बारिश की चेतावनी"))
    assert record["langs"] == ["hi"]


def test_a_thread_part_names_the_languages_of_its_headlines(settings):
    hindi = [article(title=f"मानसून: मौसम विभाग ने {n} राज्यों में भारी बारिश का अलर्ट जारी किया") for n in range(3)]
    english = [article(title="Rail fares up")]
    [first] = thread_posts(settings, "Morning", hindi + english)
    assert first["langs"] == ["hi", "en"]
    [only_english] = thread_posts(settings, "Morning Brief", english)
    assert only_english["langs"] == ["en"]
