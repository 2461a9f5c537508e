"""Social channel tasks: instant article posts, edits on update, digest posts, quiet-hours
roundups, for Telegram and then the other kinds (Mastodon: distributor.delivery.social).

Each task runs its async sending inside its own `asyncio.run`, and the channel creates its
Bot and HTTP client inside that loop: nothing is shared across event loops.
"""

from __future__ import annotations

from datetime import datetime, timezone

from tasks.app import app
from tasks.base import RETRY
from tasks.runtime import context


@app.task(name="tasks.telegram.post_articles", **RETRY)
def post_articles(article_keys: list[str]) -> dict:
    """Post new articles to every instant channel that carries their section."""
    from distributor.delivery import telegram as telegram_delivery

    from distributor.delivery import social

    settings, store = context()
    reports = telegram_delivery.post_new_articles(settings, store, article_keys)
    return _summary(reports + social.post_new_articles(settings, store, article_keys))


@app.task(name="tasks.telegram.update_articles", **RETRY)
def update_articles(article_keys: list[str]) -> dict:
    """Edit posted messages of corrected articles within the edit window."""
    from distributor.delivery import telegram as telegram_delivery

    from distributor.delivery import social

    settings, store = context()
    reports = telegram_delivery.update_posted_articles(settings, store, article_keys)
    return _summary(reports + social.update_posted_articles(settings, store, article_keys))


@app.task(name="tasks.telegram.post_run", **RETRY)
def post_run(run_id: int) -> dict:
    """Post an edition run to every channel that takes it as a digest."""
    from distributor import engine
    from distributor.delivery import telegram as telegram_delivery

    from distributor.delivery import social

    settings, store = context()
    reports = telegram_delivery.post_run(settings, store, run_id)
    result = _summary(reports + social.post_run(settings, store, run_id))
    engine.finish_if_done(store, run_id)
    return result


@app.task(name="tasks.telegram.flush_quiet_hours", **RETRY)
def flush_quiet_hours() -> dict:
    """At the end of a channel's quiet hours, post what waited as one roundup."""
    from distributor.delivery import telegram as telegram_delivery

    from distributor.delivery import social

    settings, store = context()
    now = datetime.now(timezone.utc)
    reports = telegram_delivery.flush_quiet_hours(settings, store, now=now)
    return _summary(reports + social.flush_quiet_hours(settings, store, now=now))


@app.task(name="tasks.telegram.retry_deferred", **RETRY)
def retry_deferred() -> dict:
    """Send posts deferred by a long flood wait or a temporary failure (beat, every minute)."""
    from distributor import engine
    from distributor.delivery import telegram as telegram_delivery

    from distributor.delivery import social

    settings, store = context()
    now = datetime.now(timezone.utc)
    reports = telegram_delivery.retry_deferred(settings, store, now=now)
    result = _summary(reports + social.retry_deferred(settings, store, now=now))
    # A retry may settle a run's last post: close such runs here.
    engine.finish_settled_runs(store)
    return result


def _summary(result) -> dict:  # noqa: ANN001 - whatever the delivery layer reports
    if isinstance(result, dict):
        return result
    if isinstance(result, (list, tuple)):
        return {"results": len(result)}
    return {"result": str(result)}
