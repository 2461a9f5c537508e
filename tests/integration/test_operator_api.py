"""The operator HTTP API: bearer token, schedule changes stored like the CLI's, run-now."""

from __future__ import annotations

import pytest

from distributor import schedules
from distributor.web.app import create_app
from tests.conftest import settings_for
from tests.fakes.webserver import serve

TOKEN = "operator-token-for-tests"


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("OPERATOR_TOKEN", TOKEN)
    return settings_for(tmp_path)


@pytest.fixture
def api(settings, store):
    with serve(create_app(settings, store)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield client


def test_token_required(api):
    assert api.get("/api/schedules", headers={"Authorization": ""}).status_code == 401
    assert api.get("/api/schedules", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert TOKEN not in api.get("/api/schedules", headers={"Authorization": "Bearer wrong"}).text


def test_disabled_without_a_token(tmp_path, store):
    with serve(create_app(settings_for(tmp_path), store)) as client:
        response = client.get("/api/schedules", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 503 and "OPERATOR_TOKEN" in response.json()["detail"]


def test_the_api_schema_is_for_operators_and_no_docs_page_loads_a_cdn(api):
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert api.get(path).status_code == 404
        assert api.get(path, headers={"Authorization": ""}).status_code == 404
    assert api.get("/openapi.json", headers={"Authorization": ""}).status_code == 401
    assert api.get("/openapi.json", headers={"Authorization": "Bearer wrong"}).status_code == 401
    schema = api.get("/openapi.json")
    assert schema.status_code == 200
    assert {"/webhooks/articles", "/subscribe", "/api/schedules"} <= set(schema.json()["paths"])
    assert "/openapi.json" not in schema.json()["paths"]


def test_no_schema_without_an_operator_token(tmp_path, store):
    with serve(create_app(settings_for(tmp_path), store)) as client:
        assert client.get("/openapi.json").status_code == 503
        assert client.get("/docs").status_code == 404


def test_schedule_changes_are_stored(api, settings, store):
    listed = {row["edition"]: row for row in api.get("/api/schedules").json()}
    assert listed["morning"]["cron"] == "0 7 * * *" and len(listed["morning"]["next"]) == 3
    changed = api.put("/api/schedules/morning", json={"cron": "15 6 * * *"})
    assert changed.status_code == 200 and changed.json()["next"][0].endswith("06:15:00+05:30")
    assert api.post("/api/schedules/evening/pause").json()["paused"] is True
    stored = {s.edition: s for s in schedules.load(settings, store)}
    assert stored["morning"].cron == "15 6 * * *" and stored["evening"].paused
    assert api.post("/api/schedules/evening/resume").json()["paused"] is False
    assert api.post("/api/schedules/morning/reset").json()["cron"] == "0 7 * * *"


def test_bad_requests_name_the_problem(api):
    response = api.put("/api/schedules/morning", json={"cron": "every morning"})
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "cron"] and "cron" in problem["msg"]
    assert api.post("/api/schedules/noon/pause").status_code == 404


def test_run_now_opens_one_run_per_minute(api):
    first = api.post("/api/schedules/morning/run-now")
    assert first.status_code == 202 and first.json()["created"] is True
    api.post("/api/schedules/morning/run-now")
    runs = api.get("/api/runs").json()
    # Two calls in the same minute share one run; across a minute boundary there are two.
    assert len({r["slot"] for r in runs}) == len(runs) and 1 <= len(runs) <= 2
    assert runs[0]["edition"] == "morning" and runs[0]["status"] == "building"
