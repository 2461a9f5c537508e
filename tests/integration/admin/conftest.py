"""Console fixtures: the app under real uvicorn, one operator of each role, signed-in clients."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from distributor import operators
from distributor.store import Store
from distributor.web.app import create_app
from tests.conftest import settings_for
from tests.fakes.webserver import serve

PASSWORD = "correct horse battery staple"
ROLES = ("viewer", "editor", "admin")


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 at its cheapest in tests: the real parameters cost ~50 ms a hash, and every
    test here makes several. Production keeps argon2-cffi's defaults."""
    from argon2 import PasswordHasher

    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(operators, "_hasher", cheap)
    monkeypatch.setattr(operators, "_DUMMY_HASH", cheap.hash("dummy"))


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SECRET_KEY", "console-test-secret-" + "9" * 40)
    return settings_for(tmp_path)


@pytest.fixture
def console(settings, store: Store) -> Iterator[tuple[str, Store]]:
    """(base URL, store) of a running app with operators viewer, editor and admin."""
    for role in ROLES:
        operators.add(store, role, role, PASSWORD)
    with serve(create_app(settings, store)) as client:
        yield str(client.base_url), store


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no csrf_token field on the page"
    return match.group(1)


def sign_in(base: str, name: str, password: str = PASSWORD) -> httpx.Client:
    """A client (its own cookie jar) signed in as `name`."""
    client = httpx.Client(base_url=base, timeout=30, trust_env=False)
    form = client.get("/admin/login")
    response = client.post(
        "/admin/login",
        data={"name": name, "password": password, "csrf_token": form_token(form.text), "next": "/admin"},
    )
    assert response.status_code == 303, response.text
    return client


@pytest.fixture
def clients(console) -> Iterator[dict[str, httpx.Client]]:
    base, _ = console
    signed = {role: sign_in(base, role) for role in ROLES}
    yield signed
    for client in signed.values():
        client.close()
