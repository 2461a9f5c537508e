"""Article queries: save with version tracking, select by window, list."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Iterable, Literal, Sequence

from sqlalchemy import delete, or_, select

from distributor.articles import Article, RelatedLink
from distributor.store import Store
from distributor.store.models import ArticleRow, ArticleVersionRow, PinRow, utcnow

Outcome = Literal["new", "updated", "unchanged"]

# Keys looked up per query when saving a batch; keeps the IN list within every
# database's parameter limit.
_LOOKUP_CHUNK = 500


def row_to_article(row: ArticleRow) -> Article:
    return Article(
        key=row.key,
        url=row.url,
        title=row.title,
        section=row.section,
        published_at=row.published_at,
        standfirst=row.standfirst,
        byline=row.byline,
        dateline=row.dateline,
        updated_at=row.updated_at,
        image_url=row.image_url,
        image_caption=row.image_caption,
        image_width=row.image_width,
        image_height=row.image_height,
        tags=tuple(row.tags or ()),
        read_minutes=row.read_minutes,
        also_read=tuple(RelatedLink(**link) for link in (row.also_read or ())),
        trending=row.trending,
        date_missing=row.date_missing,
        source=row.source,
        version=row.version,
        first_seen_at=row.first_seen_at,
        last_changed_at=row.last_changed_at,
        significant_change_at=row.significant_change_at,
    )


def _version_data(article: Article) -> dict:
    """The normalised fields of one version, JSON-ready.

    Built field by field: dataclasses.asdict deep-copies recursively and was a third of
    the save time when ingesting large feeds.
    """
    return {
        "key": article.key,
        "url": article.url,
        "title": article.title,
        "section": article.section,
        "published_at": article.published_at.isoformat(),
        "standfirst": article.standfirst,
        "byline": article.byline,
        "dateline": article.dateline,
        "updated_at": article.updated_at.isoformat() if article.updated_at else None,
        "image_url": article.image_url,
        "image_caption": article.image_caption,
        "image_width": article.image_width,
        "image_height": article.image_height,
        "tags": list(article.tags),
        "read_minutes": article.read_minutes,
        "also_read": [{"title": link.title, "url": link.url} for link in article.also_read],
        "trending": article.trending,
        "date_missing": article.date_missing,
        "source": article.source,
    }


def _fill_row(row: ArticleRow, article: Article) -> None:
    row.url = article.url
    row.title = article.title
    row.standfirst = article.standfirst
    row.section = article.section
    row.byline = article.byline
    row.dateline = article.dateline
    row.published_at = article.published_at
    row.updated_at = article.updated_at
    row.image_url = article.image_url
    row.image_caption = article.image_caption
    row.image_width = article.image_width
    row.image_height = article.image_height
    row.tags = list(article.tags)
    row.read_minutes = article.read_minutes
    row.also_read = [{"title": link.title, "url": link.url} for link in article.also_read]
    row.trending = article.trending
    row.source = article.source


def _with_image_size(article: Article, row: ArticleRow) -> Article:
    """`article` with the image size to store: its own when it declares one or when its
    image is another picture; else the one stored for this same image (a second source,
    say the webhook after the feed, that declares no size knows nothing new about it)."""
    declared = article.image_width is not None or article.image_height is not None
    if declared or article.image_url != row.image_url:
        return article
    return replace(article, image_width=row.image_width, image_height=row.image_height)


def save_articles(
    store: Store,
    articles: Sequence[Article],
    *,
    significant_fields: Iterable[str] = ("title", "standfirst", "image_url", "section"),
    now: datetime | None = None,
) -> list[tuple[Article, Outcome]]:
    """Insert new articles, version changed ones, leave unchanged ones alone.

    Returns each input with what happened to it, as the stored value. Within one batch a
    repeated key is treated like a second sighting (unchanged, or a further version).
    """
    now = now or utcnow()
    significant = tuple(significant_fields)
    results: list[tuple[Article, Outcome]] = []
    with store.session() as session:
        existing: dict[str, ArticleRow] = {}
        keys = list(dict.fromkeys(a.key for a in articles))
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[start : start + _LOOKUP_CHUNK]
            for row in session.scalars(select(ArticleRow).where(ArticleRow.key.in_(chunk))):
                existing[row.key] = row
        # (row, article, version, hash) taken when the version is made: a key seen twice
        # in one batch makes two versions, and reading row.version at flush time would
        # give both the same number (a UNIQUE violation that lost the whole batch).
        pending_versions: list[tuple[ArticleRow, Article, int, str]] = []
        for article in articles:
            digest = article.content_hash()
            row = existing.get(article.key)
            if row is None:
                row = ArticleRow(
                    key=article.key,
                    content_hash=digest,
                    version=1,
                    first_seen_at=now,
                    last_changed_at=now,
                    date_missing=article.date_missing,
                )
                _fill_row(row, article)
                session.add(row)
                existing[article.key] = row
                pending_versions.append((row, article, 1, digest))
                results.append((article, "new"))
                continue
            article = _with_image_size(article, row)
            if row.content_hash == digest:
                if row.trending != article.trending:
                    row.trending = article.trending
                # The size is not part of the content hash (Article.content_hash): a
                # newly declared or corrected size is kept without making a version.
                if (row.image_width, row.image_height) != (article.image_width, article.image_height):
                    row.image_width, row.image_height = article.image_width, article.image_height
                results.append((article, "unchanged"))
                continue
            before = row_to_article(row)
            # A date-less item keeps its first-seen publication time on every update.
            if article.date_missing:
                article = replace(article, published_at=row.published_at)
            if any(getattr(before, f) != getattr(article, f) for f in significant):
                row.significant_change_at = now
            _fill_row(row, article)
            row.content_hash = digest
            row.version += 1
            row.last_changed_at = now
            pending_versions.append((row, article, row.version, digest))
            results.append((article, "updated"))
        session.flush()
        for row, article, version, digest in pending_versions:
            session.add(
                ArticleVersionRow(
                    article_id=row.id,
                    version=version,
                    content_hash=digest,
                    data=_version_data(article),
                    recorded_at=now,
                )
            )
        stored = {key: row_to_article(row) for key, row in existing.items()}
    return [(stored[a.key], outcome) for a, outcome in results]


def articles_in_window(store: Store, start: datetime, end: datetime) -> list[Article]:
    """Articles published, or significantly updated, in [start, end)."""
    with store.session() as session:
        rows = session.scalars(
            select(ArticleRow).where(
                or_(
                    (ArticleRow.published_at >= start) & (ArticleRow.published_at < end),
                    (ArticleRow.significant_change_at >= start)
                    & (ArticleRow.significant_change_at < end),
                )
            )
        ).all()
        return [row_to_article(r) for r in rows]


def articles_by_keys(store: Store, keys: Sequence[str]) -> list[Article]:
    """The stored articles with these keys, in the order of `keys` (missing ones left out)."""
    found: dict[str, Article] = {}
    with store.session() as session:
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = list(keys[start : start + _LOOKUP_CHUNK])
            for row in session.scalars(select(ArticleRow).where(ArticleRow.key.in_(chunk))):
                found[row.key] = row_to_article(row)
    return [found[k] for k in keys if k in found]


def list_articles(
    store: Store,
    *,
    section: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[Article]:
    """Newest first."""
    query = select(ArticleRow)
    if section:
        query = query.where(ArticleRow.section == section)
    if since:
        query = query.where(ArticleRow.published_at >= since)
    query = query.order_by(ArticleRow.published_at.desc(), ArticleRow.key).limit(limit)
    with store.session() as session:
        return [row_to_article(r) for r in session.scalars(query)]


def find_article(store: Store, key_or_url: str) -> Article | None:
    with store.session() as session:
        row = session.scalars(
            select(ArticleRow)
            .where(or_(ArticleRow.key == key_or_url, ArticleRow.url == key_or_url))
            .limit(1)
        ).first()
        return row_to_article(row) if row else None


def versions(store: Store, key: str) -> list[dict]:
    """Every stored version of an article, oldest first."""
    with store.session() as session:
        row = session.scalars(select(ArticleRow).where(ArticleRow.key == key)).first()
        if row is None:
            return []
        return [
            {"version": v.version, "content_hash": v.content_hash, **v.data}
            for v in session.scalars(
                select(ArticleVersionRow)
                .where(ArticleVersionRow.article_id == row.id)
                .order_by(ArticleVersionRow.version)
            )
        ]


def pin(store: Store, target: str) -> bool:
    """Pin an article (URL or key) to Trending; False if it was already pinned."""
    with store.session() as session:
        if session.get(PinRow, target) is not None:
            return False
        session.add(PinRow(target=target))
        return True


def unpin(store: Store, target: str) -> bool:
    with store.session() as session:
        return session.execute(delete(PinRow).where(PinRow.target == target)).rowcount > 0


def pins(store: Store) -> list[str]:
    with store.session() as session:
        return list(session.scalars(select(PinRow.target).order_by(PinRow.created_at, PinRow.target)))
