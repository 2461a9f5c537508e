"""The store on SQLite and PostgreSQL: migrations, versioning, windows, uniqueness."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from distributor.articles import Article, RelatedLink
from distributor.store import Store
from distributor.store.articles import (
    articles_in_window,
    find_article,
    list_articles,
    pin,
    pins,
    save_articles,
    unpin,
    versions,
)
from distributor.store.models import ArticleRow, DeliveryRow, EditionRunRow, SubscriberRow, TelegramPostRow
from tests.conftest import PostgresSchemaPool, postgres_schema

UTC = timezone.utc
T0 = datetime(2025, 7, 4, 6, 17, tzinfo=UTC)

SEED = Article(
    key="https://www.newsarenaindia.com/international/russia-becomes-first-country-to-officially-recognise-taliban-govt",
    url="https://www.newsarenaindia.com/international/russia-becomes-first-country-to-officially-recognise-taliban-govt",
    title="Russia becomes first country to officially recognise Taliban rule",
    standfirst="Russia has become the first country to officially recognise Afghanistan’s Taliban-led government.",
    section="international",
    published_at=T0,
    byline="News Arena Network",
    dateline="Moscow",
    updated_at=T0 + timedelta(minutes=30),
    image_url="https://www.newsarenaindia.com/images/russia-taliban.jpg",
    image_caption="Russian envoy Dmitry Zhirnov hands over credentials in Kabul",
    image_width=1200,
    image_height=675,
    tags=("Russia", "Afghanistan"),
    read_minutes=2,
    also_read=(RelatedLink("Russia rains missiles on Kyiv hours after Putin-Trump phone call", "https://www.newsarenaindia.com/international/russia-rains-missiles-on-kyiv"),),
    trending=True,
)


@pytest.fixture(params=["sqlite", "postgres"])
def empty_store(request, tmp_path):
    """A database with no schema at all, once per backend."""
    drop = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'empty.db'}"
    else:
        url, drop = postgres_schema("PostgreSQL migration test")
    store = Store(url)
    yield store
    store.dispose()
    if drop:
        drop()


def shape(store: Store) -> dict[str, list]:
    """Every table's columns (name, type, nullable, default), indexes and constraints."""
    inspector = inspect(store.engine)
    return {
        name: [
            [(c["name"], str(c["type"]), c["nullable"], str(c.get("default"))) for c in inspector.get_columns(name)],
            sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(name)),
            sorted((u["name"] or "", tuple(u["column_names"])) for u in inspector.get_unique_constraints(name)),
            sorted((f["referred_table"], tuple(f["constrained_columns"])) for f in inspector.get_foreign_keys(name)),
            inspector.get_pk_constraint(name)["constrained_columns"],
        ]
        for name in sorted(inspector.get_table_names())
    }


def test_the_migration_chain_builds_every_table_from_empty(empty_store):
    """Every revision from none to head, as `distributor init` runs them on a new database."""
    assert empty_store.current_revision() == ""
    assert empty_store.migrate() == empty_store.head_revision() != ""
    tables = set(inspect(empty_store.engine).get_table_names())
    assert {
        "articles",
        "article_versions",
        "subscribers",
        "edition_runs",
        "deliveries",
        "telegram_posts",
        "feed_state",
        "pins",
        "webhook_receipts",
        "alembic_version",
    } <= tables
    assert empty_store.migrate() == empty_store.head_revision()  # upgrading an up-to-date database is a no-op


def test_the_store_a_test_gets_is_the_migration_chains_result_with_no_rows(empty_store, request):
    """The `store` fixture hands out copies of one migrated database (SQLite) or one
    emptied schema (PostgreSQL): they must be what the chain builds, rows aside."""
    given = request.getfixturevalue("sqlite_store" if empty_store.dialect == "sqlite" else "postgres_store")
    empty_store.migrate()
    assert given.current_revision() == given.head_revision()
    assert shape(given) == shape(empty_store)
    with given.session() as session:
        for table in ("articles", "subscribers", "edition_runs", "deliveries", "operators"):
            assert session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0, table


@pytest.mark.postgres
def test_a_reused_postgres_schema_is_emptied_with_ids_from_one_or_replaced():
    """PostgresSchemaPool: rows and sequences reset between tests; a schema a test
    altered, or one a test left locked, is replaced by a newly migrated one."""

    def add_reader(url: str, email: str) -> int:
        store = Store(url)
        try:
            with store.session() as session:
                row = SubscriberRow(email=email, status="confirmed")
                session.add(row)
                session.flush()
                return row.id
        finally:
            store.dispose()

    pool = PostgresSchemaPool()
    pool.lock_timeout = "200ms"
    try:
        first = pool.checkout()
        schema = pool.schema
        assert add_reader(first, "a@example.com") == 1 and add_reader(first, "b@example.com") == 2
        second = pool.checkout()
        assert pool.schema == schema  # reused, not migrated again
        assert second != first  # but a URL new to the process, as a new schema's was
        assert add_reader(second, "a@example.com") == 1  # no rows left, ids from 1 again

        altered = Store(second)
        with altered.engine.begin() as conn:
            conn.execute(text("ALTER TABLE subscribers ADD COLUMN leftover integer"))
        altered.dispose()
        third = pool.checkout()
        assert pool.schema != schema
        fresh = Store(third)
        assert "leftover" not in {c["name"] for c in inspect(fresh.engine).get_columns("subscribers")}
        fresh.dispose()

        holder = Store(third)
        with holder.engine.connect() as conn:  # a transaction a test left open, holding a lock
            conn.execute(text("LOCK TABLE subscribers IN ACCESS EXCLUSIVE MODE"))
            locked, fourth = pool.schema, pool.checkout()
            conn.rollback()
        holder.dispose()
        assert pool.schema != locked and add_reader(fourth, "a@example.com") == 1
    finally:
        pool.close()


def test_round_trip_keeps_every_field(store):
    [(stored, outcome)] = save_articles(store, [SEED], now=T0)
    assert outcome == "new"
    loaded = find_article(store, SEED.url)
    assert loaded == replace(SEED, first_seen_at=T0, last_changed_at=T0)
    assert loaded.published_at.tzinfo is not None and loaded.published_at == T0
    assert loaded.also_read == SEED.also_read and loaded.tags == SEED.tags


def test_unchanged_then_updated_as_new_version(store):
    save_articles(store, [SEED], now=T0)
    [(_, outcome)] = save_articles(store, [SEED], now=T0 + timedelta(hours=1))
    assert outcome == "unchanged"
    corrected = replace(SEED, title=SEED.title + " (corrected)")
    later = T0 + timedelta(hours=2)
    [(stored, outcome)] = save_articles(store, [corrected], now=later)
    assert outcome == "updated"
    assert stored.version == 2 and stored.is_updated
    assert stored.significant_change_at == later and stored.last_changed_at == later
    assert stored.first_seen_at == T0
    history = versions(store, SEED.key)
    assert [v["version"] for v in history] == [1, 2]
    assert history[0]["title"] == SEED.title and history[1]["title"] == corrected.title


def test_minor_change_is_a_version_but_not_significant(store):
    save_articles(store, [SEED], now=T0)
    [(stored, outcome)] = save_articles(store, [replace(SEED, byline="News Arena Desk")], now=T0 + timedelta(hours=1))
    assert outcome == "updated" and stored.version == 2
    assert stored.significant_change_at is None


def test_dates_alone_do_not_make_a_version(store):
    save_articles(store, [SEED], now=T0)
    shifted = replace(SEED, published_at=T0 + timedelta(days=3), updated_at=None)
    [(_, outcome)] = save_articles(store, [shifted])
    assert outcome == "unchanged"


def test_duplicate_key_in_one_batch_is_not_two_articles(store):
    results = save_articles(store, [SEED, SEED], now=T0)
    assert [o for _, o in results] == ["new", "unchanged"]
    assert len(list_articles(store)) == 1


def test_image_size_is_kept_in_place_and_follows_the_image(store):
    """A size declared (or corrected) later is stored without a new version or an
    "Updated" mark; a source declaring none keeps the known size of the same image; a new
    image brings its own size, or none."""
    plain = replace(SEED, image_width=None, image_height=None)
    save_articles(store, [plain], now=T0)
    [(stored, outcome)] = save_articles(store, [SEED], now=T0 + timedelta(hours=1))
    assert outcome == "unchanged" and stored.version == 1 and not stored.is_updated
    assert (stored.image_width, stored.image_height) == (1200, 675)
    assert (find_article(store, SEED.key).image_width, find_article(store, SEED.key).image_height) == (1200, 675)

    [(stored, outcome)] = save_articles(store, [plain], now=T0 + timedelta(hours=2))
    assert outcome == "unchanged" and (stored.image_width, stored.image_height) == (1200, 675)
    [(stored, outcome)] = save_articles(store, [replace(plain, byline="News Arena Desk")], now=T0 + timedelta(hours=3))
    assert outcome == "updated" and (stored.image_width, stored.image_height) == (1200, 675)

    later = T0 + timedelta(hours=4)
    new_image = replace(plain, byline="News Arena Desk", image_url="https://www.newsarenaindia.com/images/kabul.jpg")
    [(stored, outcome)] = save_articles(store, [new_image], now=later)
    assert outcome == "updated" and stored.significant_change_at == later
    assert (stored.image_width, stored.image_height) == (None, None)
    [(stored, _)] = save_articles(store, [replace(new_image, image_width=144, image_height=81)], now=later)
    assert (stored.image_width, stored.image_height) == (144, 81)
    history = versions(store, SEED.key)
    assert [(v["image_width"], v["image_height"]) for v in history] == [(None, None), (1200, 675), (None, None)]


@pytest.fixture(params=["sqlite", "postgres"])
def store_at_0016(request, tmp_path):
    """A database at schema 0016, before articles had an image size."""
    from distributor.store import Store
    from tests.conftest import postgres_schema

    drop = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url, drop = postgres_schema("PostgreSQL migration test")
    old = Store(url)
    old.migrate("0016")
    yield old
    old.dispose()
    if drop:
        drop()


def test_articles_stored_before_0017_load_without_a_size(store_at_0016):
    published = T0.replace(tzinfo=None) if store_at_0016.dialect == "sqlite" else T0
    with store_at_0016.session() as session:
        session.execute(
            text(
                "INSERT INTO articles (key, url, title, standfirst, section, byline, dateline, published_at,"
                " image_url, image_caption, tags, also_read, trending, date_missing, source, content_hash,"
                " version, first_seen_at, last_changed_at) VALUES (:key, :url, 'Old story', '', 'nation', '', '',"
                " :at, :image, '', '[]', '[]', false, false, 'feed', :hash, 1, :at, :at)"
            ),
            {"key": SEED.key, "url": SEED.url, "at": published, "image": SEED.image_url, "hash": "0" * 64},
        )
    assert store_at_0016.migrate() == "0017"
    old = find_article(store_at_0016, SEED.key)
    assert old.image_url == SEED.image_url
    assert (old.image_width, old.image_height) == (None, None)


def test_window_query_half_open_and_includes_significant_updates(store):
    older = replace(SEED, key="older", url="https://x/older", published_at=T0 - timedelta(days=2))
    save_articles(store, [SEED, older], now=T0)
    assert [a.key for a in articles_in_window(store, T0, T0 + timedelta(hours=1))] == [SEED.key]
    assert articles_in_window(store, T0 - timedelta(hours=1), T0) == []
    save_articles(store, [replace(older, title="Changed headline")], now=T0 + timedelta(minutes=10))
    found = {a.key for a in articles_in_window(store, T0, T0 + timedelta(hours=1))}
    assert found == {SEED.key, "older"}


def test_list_filters_and_order(store):
    other = replace(SEED, key="k2", url="https://x/2", section="sports", published_at=T0 + timedelta(hours=1))
    save_articles(store, [SEED, other], now=T0)
    assert [a.key for a in list_articles(store)] == ["k2", SEED.key]
    assert [a.key for a in list_articles(store, section="sports")] == ["k2"]
    assert [a.key for a in list_articles(store, since=T0 + timedelta(minutes=1))] == ["k2"]


def test_pins(store):
    assert pin(store, SEED.url) is True
    assert pin(store, SEED.url) is False
    assert pins(store) == [SEED.url]
    assert unpin(store, SEED.url) is True and unpin(store, SEED.url) is False


def test_ledger_uniqueness(store):
    with store.session() as session:
        sub = SubscriberRow(email="reader@example.com", status="confirmed")
        run = EditionRunRow(edition="morning", slot=T0, local_slot="2025-07-04T11:47:00", window_start=T0 - timedelta(days=1), window_end=T0)
        session.add_all([sub, run])
    with store.session() as session:
        session.add(DeliveryRow(run_id=run.id, subscriber_id=sub.id))
    with pytest.raises(IntegrityError):
        with store.session() as session:
            session.add(DeliveryRow(run_id=run.id, subscriber_id=sub.id))
    with pytest.raises(IntegrityError):
        with store.session() as session:
            session.add(EditionRunRow(edition="morning", slot=T0, local_slot="2025-07-04T11:47:00", window_start=T0 - timedelta(days=1), window_end=T0))
    save_articles(store, [SEED], now=T0)
    with store.session() as session:
        article_id = session.scalar(select(ArticleRow.id).where(ArticleRow.key == SEED.key))
        session.add(TelegramPostRow(channel="main", chat_id="@newsarena", article_id=article_id, message_ids=[1]))
    with pytest.raises(IntegrityError):
        with store.session() as session:
            session.add(TelegramPostRow(channel="main", chat_id="@newsarena", article_id=article_id))


def test_naive_datetime_refused(store):
    with pytest.raises(Exception, match="naive"):
        save_articles(store, [replace(SEED, published_at=datetime(2025, 7, 4, 6, 17))])
