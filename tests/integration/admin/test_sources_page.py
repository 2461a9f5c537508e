"""Console sources page: a failing feed shows with its error, on both databases."""

from __future__ import annotations

from distributor.ingest.pipeline import ingest_source


def test_sources_show_health_and_a_failing_feed(clients, console, settings, tmp_path):
    _, store = console
    broken = tmp_path / "broken.xml"
    broken.write_text("<html><body>not a feed</body></html>")
    assert not ingest_source(settings, store, str(broken), name="broken-feed").ok
    page = clients["viewer"].get("/admin/sources")
    assert page.status_code == 200 and 'class="admin page-sources"' in page.text
    assert "newsarena-sample" in page.text
    assert "failing" in page.text and "not a feed" in page.text
    twin = clients["viewer"].get("/admin/sources.json").json()
    failing = [s for s in twin["sources"] if s["status"] == "error"]
    assert len(failing) == 1 and "not a feed" in failing[0]["last_error"]
    assert clients["viewer"].get("/admin").text.count("failing") >= 1  # the overview flags it too
