"""Ingest end to end on both databases: the feed traps of issue 9 lose nothing.

A feed with a duplicate story, a lone-surrogate reference and escaped markup in a title
used to crash its whole source (IntegrityError, UnicodeEncodeError) or lose headline text.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timezone
from pathlib import Path

from distributor.ingest.pipeline import IngestReport, ingest_source, store_articles
from distributor.store.articles import articles_by_keys, save_articles, versions
from tests.unit.test_feed_traps import DUPLICATES, SITE, SURROGATES, item, rss

UTC = timezone.utc


def write(tmp_path: Path, name: str, body: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(body)
    return str(path)


def test_a_feed_repeating_a_story_is_stored_not_lost(settings, store, tmp_path):
    report = ingest_source(settings, store, write(tmp_path, "dup.xml", DUPLICATES))
    assert report.ok, report.error
    assert sorted(a.key for a in report.new) == [SITE + "nation/monsoon", SITE + "nation/other"]
    assert len(report.duplicates) == 1 and "duplicate in feed of item 3" in report.duplicates[0]
    assert "1 duplicate in feed" in report.summary()
    (monsoon,) = articles_by_keys(store, [SITE + "nation/monsoon"])
    assert monsoon.standfirst == "Second telling, corrected."


def test_one_bad_character_never_loses_the_feed(settings, store, tmp_path):
    report = ingest_source(settings, store, write(tmp_path, "bad.xml", SURROGATES))
    assert report.ok, report.error
    assert sorted(a.title for a in report.new) == ["Bad character", "Good one"]


def test_escaped_markup_in_a_title_is_stored_as_the_reader_sees_it(settings, store, tmp_path):
    body = rss(
        item(
            "Sensex &amp; Nifty close at record highs; \"Rally &lt;broad-based&gt;\", say analysts",
            SITE + "economy/sensex",
        )
    )
    report = ingest_source(settings, store, write(tmp_path, "t.xml", body))
    (article,) = articles_by_keys(store, [a.key for a in report.new])
    assert article.title == 'Sensex & Nifty close at record highs; "Rally <broad-based>", say analysts'


def test_the_store_takes_any_mix_of_new_updated_and_repeated_keys(settings, store):
    from tests.integration.test_store import SEED

    save_articles(store, [SEED])
    other = replace(SEED, key="k-2", url=SITE + "nation/k-2")
    batch = [
        replace(SEED, title="v2"),
        other,
        replace(SEED, title="v3"),
        replace(other, standfirst="changed"),
        replace(other, standfirst="changed"),  # identical repeat
        replace(SEED, title="v3"),
    ]
    outcomes = [outcome for _, outcome in save_articles(store, batch)]
    assert outcomes == ["updated", "new", "updated", "updated", "unchanged", "unchanged"]
    assert [v["version"] for v in versions(store, SEED.key)] == [1, 2, 3]
    assert [v["version"] for v in versions(store, "k-2")] == [1, 2]


def test_an_article_the_database_refuses_is_rejected_alone(settings, postgres_store):
    # PostgreSQL only: SQLite stores any string, so nothing there refuses an article.
    from tests.integration.test_store import SEED

    good = replace(SEED, key="good-1", url=SITE + "nation/good-1")
    bad = replace(SEED, key="bad-" + "x" * 2000, url=SITE + "nation/bad")  # > String(1024)
    report = store_articles(settings, postgres_store, [good, bad, replace(good, key="good-2")], IngestReport("t"))
    assert sorted(a.key for a in report.new) == ["good-1", "good-2"]
    assert len(report.rejected) == 1 and "could not be stored" in report.rejected[0]
