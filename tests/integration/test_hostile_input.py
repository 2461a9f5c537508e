"""No input answers 500 (issue 11, item 6): deeply nested JSON on every route that reads
JSON, ids beyond their column's range, out-of-range query parameters. The app runs
under real uvicorn on both stores, so a 500 is exactly what a client would see."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from distributor import subscribers as subs
from distributor.ingest.webhook import signed_headers
from distributor.jsonlimits import MAX_DEPTH
from distributor.store import Store
from distributor.web.app import create_app
from tests.conftest import settings_for
from tests.fakes.webserver import serve

SECRET = "hostile-input-secret-7d41c2e9b08a4f6e"
TOKEN = "operator-token-for-hostile-tests"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SECRET_KEY", SECRET)
    monkeypatch.setenv("OPERATOR_TOKEN", TOKEN)
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://news.example")
    return settings_for(tmp_path)


@pytest.fixture
def client(settings, store: Store) -> Iterator[httpx.Client]:
    with serve(create_app(settings, store, on_ingested=lambda report: None)) as client:
        yield client


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


# About 8 KB of brackets: deep enough to overflow Python's recursive JSON decoder.
DEEP = nested(4000)


def signed_post(client: httpx.Client, path: str, body: bytes) -> httpx.Response:
    headers = signed_headers(SECRET, int(time.time()), body)
    return client.post(path, content=body, headers={**headers, "Content-Type": "application/json"})


def assert_too_deep(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert f"nested deeper than {MAX_DEPTH} levels" in response.text


def test_deep_json_on_subscribe_is_400(client):
    body = '{"email": "deep@example.com", "name": ' + DEEP + "}"
    assert_too_deep(client.post("/subscribe", content=body, headers={"Content-Type": "application/json"}))


def test_deep_json_on_preferences_is_400(client, settings, store):
    subscriber, _ = subs.subscribe(settings, store, "prefs@example.com", confirmed=True)
    token = subs.make_token(settings, "preferences", subscriber.id, subscriber.email)
    body = '{"sections": ' + DEEP + "}"
    assert_too_deep(client.post(f"/preferences/{token}", content=body, headers={"Content-Type": "application/json"}))


@pytest.mark.parametrize("path", ["/webhooks/articles", "/webhooks/pageviews"])
def test_deep_json_on_signed_webhooks_is_400(client, path):
    assert_too_deep(signed_post(client, path, ('{"articles": ' + DEEP + "}").encode()))


def test_depth_is_counted_outside_strings_only(client):
    # Brackets inside a string are text, escaped quotes included: this name is not nesting.
    body = json.dumps({"email": "brackets@example.com", "name": "[" * 40 + "\\\" {" * 40})
    response = client.post("/subscribe", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    within = '{"email": "ok@example.com", "name": ' + nested(MAX_DEPTH - 1, '"x"') + "}"
    response = client.post("/subscribe", content=within, headers={"Content-Type": "application/json"})
    # Nested within the limit parses, and the name is then refused for not being text.
    assert response.status_code == 400 and "name" in response.json()["error"] and "deeper" not in response.text


@pytest.mark.parametrize("run_id", ["2147483648", "99999999999", str(2**63), str(10**40)])
def test_archive_ids_beyond_the_column_are_404(client, run_id):
    response = client.get(f"/archive/{run_id}")
    assert response.status_code == 404, response.text


@pytest.mark.parametrize("limit", ["-1", "0", "501", str(10**30)])
def test_runs_limit_out_of_range_is_422(client, limit):
    response = client.get("/api/runs", params={"limit": limit}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 422, response.text
    assert "limit" in response.text


def test_runs_limit_in_range_answers(client):
    response = client.get("/api/runs", params={"limit": "500"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and response.json() == []
