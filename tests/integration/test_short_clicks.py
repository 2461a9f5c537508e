"""Short click links (`/c/{run}_{ref}{mac}`) through a real server, on SQLite and PostgreSQL:
at most 80 characters, resolved to the article with the issue's UTM parameters, counted
like signed links, and refused (400, no Location) when altered or when the issue is gone."""

from __future__ import annotations

from datetime import datetime, timedelta

from distributor import short_clicks
from distributor import trending as t
from distributor.store.articles import save_articles
from distributor.store.models import EditionRunRow, utcnow
from distributor.web.app import create_app
from tests.fakes.webserver import serve
from tests.integration.test_trending_web import PUBLIC, keyed, path_of, story, tally


def make_run(store, keys: list[str]) -> tuple[int, datetime]:
    end = utcnow().replace(microsecond=0)
    with store.session() as session:
        row = EditionRunRow(
            edition="morning", slot=end, local_slot=end.strftime("%Y-%m-%dT%H:%M:%S"), window_start=end - timedelta(hours=24), window_end=end,
            status="sending", article_keys=keys, layout={"trending": [], "sections": [["nation", keys]], "omitted": 0},
        )
        session.add(row)
        session.flush()
        run_id = row.id
        session.commit()
    return run_id, end


def test_short_link_redirects_to_the_article_with_the_issues_utm_and_counts(tmp_path, store):
    s = keyed(tmp_path)
    articles = [story(f"s{i}", "nation", 30 + i) for i in range(3)]
    save_articles(store, articles)
    run_id, _ = make_run(store, [a.key for a in articles])
    link = short_clicks.short_url(s, articles[1], run_id)
    assert len(link) <= 80 and link.startswith(PUBLIC + "/c/")
    with serve(create_app(s, store)) as client:
        response = client.get(path_of(link))
        assert response.status_code == 302
        assert response.headers["location"] == (
            f"{articles[1].url}?utm_source=newsletter&utm_medium=email&utm_campaign=morning"
        )
        assert response.headers["cache-control"] == "no-store"
        assert tally(s, store, articles[1].key).clicks == 1
        assert t.click_counts(store, run_id=run_id) == [
            {"article_key": articles[1].key, "run_id": run_id, "channel": "email", "clicks": 1}
        ]

        token = path_of(link).rsplit("/", 1)[1]
        run, rest = token.split("_", 1)
        flipped = rest[:-1] + ("A" if rest[-1] != "A" else "B")
        other_ref = short_clicks.key_ref(articles[0].key) + rest[8:]  # another article, same MAC
        other_run = short_clicks.short_token(s, articles[1].key, run_id).replace(run + "_", "zz_", 1)
        unknown_run = short_clicks.short_token(s, articles[1].key, run_id + 1000)
        not_in_run = short_clicks.short_token(s, "https://www.newsarenaindia.com/nation/elsewhere", run_id)
        for bad in (f"{run}_{flipped}", f"{run}_{other_ref}", other_run, unknown_run, not_in_run):
            response = client.get(f"/c/{bad}")
            assert response.status_code == 400, bad
            assert "location" not in response.headers
    assert tally(s, store, articles[0].key) is None


def test_a_short_link_made_with_another_key_is_refused(tmp_path, store):
    from distributor.settings import Environment, Settings

    s = keyed(tmp_path)
    article = story("s1", "nation", 10)
    save_articles(store, [article])
    run_id, _ = make_run(store, [article.key])
    forged = Settings(s.file, Environment(secret_key="someone-elses-key", public_base_url=PUBLIC), s.config_path)
    with serve(create_app(s, store)) as client:
        response = client.get(path_of(short_clicks.short_url(forged, article, run_id)))
        assert response.status_code == 400 and "location" not in response.headers
