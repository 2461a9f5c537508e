"""Property-based fuzzing of every route in the app's OpenAPI schema (schemathesis).

Public, webhook and operator routes alike, on both stores: requests are generated from
the schema (valid and invalid ones), the operator routes get a valid bearer token and
the signed webhooks a valid signature over the exact body sent, so the fuzzing reaches
past authentication. Every answer must be no 5xx and must match the schema where the
schema describes it. The schema comes from `app.openapi()`, not over HTTP, so it does
not matter who may read /openapi.json.

Bounded for `make test`: MAX_EXAMPLES cases per operation, derandomized (the same cases
on every run). The totals are printed at the end of the module.
"""

from __future__ import annotations

import json
import time
import warnings
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings as hypothesis_settings

from distributor.ingest.webhook import signed_headers
from distributor.settings import WebConfig, load_settings
from distributor.web import public
from distributor.web.app import create_app
from tests.conftest import CONFIG, settings_for

SECRET = "fuzzing-secret-5b1e0c7a93d24f68a1c2"
TOKEN = "operator-token-for-fuzzing"
MAX_EXAMPLES = 25
SIGNED = ("/webhooks/articles", "/webhooks/pageviews")

# GET and HEAD /c/{token} are one route, so FastAPI names both operations alike; harmless.
pytestmark = pytest.mark.filterwarnings("ignore:Duplicate Operation ID:UserWarning")

# Requests sent per operation (both stores together); reported at the end.
SENT: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def report(request):
    yield
    if SENT:
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(
                f"\nAPI fuzzing: {sum(SENT.values())} requests over {len(SENT)} operations "
                f"({MAX_EXAMPLES} examples per operation and store at most)"
            )


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store):
    monkeypatch.setenv("SECRET_KEY", SECRET)
    monkeypatch.setenv("OPERATOR_TOKEN", TOKEN)
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://news.example")
    # Limits high enough that the fuzzer reaches the handlers, not only the 429.
    web = WebConfig(subscribe_per_ip=100_000, subscribe_per_address=1000)
    app = create_app(settings_for(tmp_path, web=web), store, on_ingested=lambda report: None)
    yield app
    public.signup_queue(app).join()  # nothing left working on this test's store


def operations(app) -> dict[str, object]:
    """The app's API operations by label ("GET /archive/{run_id}")."""
    schema = schemathesis.openapi.from_dict(app.openapi())
    return {result.ok().label: result.ok() for result in schema.get_all_operations()}


# The routes, read at collection time from an app on no store (building the schema
# touches no database); each test then fuzzes its route against an app on a real store.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
    LABELS = sorted(operations(create_app(load_settings(CONFIG), None)))


@pytest.fixture
def client(app):
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        yield client


def send(client: TestClient, case) -> object:  # noqa: ANN001 - a schemathesis Case
    """Send the case as a client would: operator token on /api, a signature over the exact
    bytes on the webhooks."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    headers = dict(kwargs.pop("headers", None) or {})
    assert not kwargs.pop("cookies", None), "the schema has no cookie parameters"
    if "json" in kwargs:
        kwargs["content"] = json.dumps(kwargs.pop("json")).encode()
        headers.setdefault("Content-Type", "application/json")
    if case.path.startswith("/api/"):
        headers["Authorization"] = f"Bearer {TOKEN}"
    if case.path in SIGNED:
        content = kwargs.get("content") or b""
        if isinstance(content, str):
            content = content.encode()
        kwargs["content"] = content
        headers.update(signed_headers(SECRET, int(time.time()), content))
    SENT[f"{case.method.upper()} {case.path}"] += 1
    return client.request(headers=headers, **kwargs)


@pytest.mark.parametrize("label", LABELS)
def test_no_input_answers_5xx_and_every_answer_matches_the_schema(app, client, label):
    # schemathesis's own pytest loader does not run on pytest 9: its strategy, with
    # hypothesis's `given`, does the same.
    operation = operations(app)[label]

    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case) -> None:  # noqa: ANN001 - a schemathesis Case
        response = send(client, case)
        checks = [schemathesis.checks.not_a_server_error, schemathesis.checks.response_schema_conformance]
        if case.path == "/healthz" and response.status_code == 503:
            # The health check's documented "a part is down" answer (here: no beat
            # ticks in this test), not a crash.
            assert response.json()["ok"] is False
            checks = [schemathesis.checks.response_schema_conformance]
        case.validate_response(response, checks=checks)

    fuzz()
