from datetime import datetime, timezone

from distributor.articles import Article
from distributor.store.articles import save_articles


def test_smoke(store):
    a = Article(key="k", url="https://x/a", title="T", section="nation",
                published_at=datetime(2025, 7, 4, 6, 17, tzinfo=timezone.utc))
    [(stored, outcome)] = save_articles(store, [a])
    assert outcome == "new" and stored.published_at == a.published_at
