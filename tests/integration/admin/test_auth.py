"""Console sign-in on both databases: sessions, cookies, CSRF, roles, login limits."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from distributor import operators
from tests.integration.admin.conftest import PASSWORD, form_token, sign_in


def test_without_a_session_pages_redirect_to_login_and_twins_answer_401(console):
    base, _ = console
    with httpx.Client(base_url=base, trust_env=False) as anonymous:
        page = anonymous.get("/admin/runs")
        assert page.status_code == 303 and page.headers["location"] == "/admin/login?next=/admin/runs"
        assert anonymous.get("/admin/runs.json").status_code == 401
        assert anonymous.get("/admin").status_code == 303


def test_login_sets_a_strict_http_only_cookie_and_the_overview_names_the_operator(console):
    base, _ = console
    client = httpx.Client(base_url=base, trust_env=False)
    form = client.get("/admin/login")
    assert "default-src 'none'" in form.headers["content-security-policy"]
    response = client.post(
        "/admin/login", data={"name": "editor", "password": PASSWORD, "csrf_token": form_token(form.text), "next": "/admin/runs"}
    )
    assert (response.status_code, response.headers["location"]) == (303, "/admin/runs")
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith("distributor_admin="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie  # plain http on loopback; https requests get Secure
    overview = client.get("/admin")
    assert overview.status_code == 200
    assert "editor · editor" in overview.text and 'class="admin page-overview"' in overview.text


def test_wrong_password_and_unknown_name_answer_alike(console):
    base, _ = console
    with httpx.Client(base_url=base, trust_env=False) as client:
        answers = []
        for name in ("editor", "nobody"):
            form = client.get("/admin/login")
            response = client.post("/admin/login", data={"name": name, "password": "wrong password!", "csrf_token": form_token(form.text)})
            answers.append((response.status_code, "Wrong name or password." in response.text))
        assert answers == [(401, True), (401, True)]


def test_login_without_its_form_token_is_refused(console):
    base, _ = console
    with httpx.Client(base_url=base, trust_env=False) as client:
        response = client.post("/admin/login", data={"name": "admin", "password": PASSWORD, "csrf_token": "forged"})
        assert response.status_code == 403
        assert "distributor_admin=" not in response.headers.get("set-cookie", "")


def test_logins_are_limited_per_account(console, settings):
    base, _ = console
    limit = settings.file.admin.login_per_account
    with httpx.Client(base_url=base, trust_env=False) as client:
        codes = []
        for _ in range(limit + 1):
            form = client.get("/admin/login")
            codes.append(
                client.post("/admin/login", data={"name": "admin", "password": "wrong password!", "csrf_token": form_token(form.text)}).status_code
            )
        assert codes == [401] * limit + [429]
        # The right password is refused too while the account is limited.
        form = client.get("/admin/login")
        right = client.post("/admin/login", data={"name": "admin", "password": PASSWORD, "csrf_token": form_token(form.text)})
        assert right.status_code == 429


def test_logout_needs_the_csrf_token_and_ends_the_session(clients):
    client = clients["viewer"]
    assert client.post("/admin/logout", data={"csrf_token": "nope"}).status_code == 403
    assert client.get("/admin").status_code == 200
    token = form_token(client.get("/admin").text)
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 303
    # The old cookie value is dead even if a browser kept it.
    assert client.get("/admin").status_code == 303


def test_an_idle_session_expires(console, settings):
    base, store = console
    client = sign_in(base, "viewer")
    token = client.cookies["distributor_admin"]
    idle = timedelta(minutes=settings.file.admin.idle_minutes)
    assert operators.find_session(store, token, idle=idle) is not None
    later = operators.find_session(store, token, idle=idle, now=operators.utcnow() + idle + timedelta(seconds=1))
    assert later is None
    assert client.get("/admin").status_code == 303  # deleted, not merely hidden


def test_passwords_are_argon2_and_changing_one_ends_sessions(console):
    base, store = console
    client = sign_in(base, "editor")
    with store.session() as session:
        from sqlalchemy import select

        from distributor.store.models import OperatorRow

        hashed = session.scalar(select(OperatorRow.password_hash).where(OperatorRow.name == "editor"))
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed
    assert operators.PasswordHasher().check_needs_rehash(hashed)  # test params; real ones re-hash
    operators.set_password(store, "editor", "another long password")
    assert client.get("/admin").status_code == 303


def test_next_is_never_an_open_redirect(console):
    base, _ = console
    with httpx.Client(base_url=base, trust_env=False) as client:
        form = client.get("/admin/login")
        response = client.post(
            "/admin/login",
            data={"name": "viewer", "password": PASSWORD, "csrf_token": form_token(form.text), "next": "//evil.example/admin"},
        )
        assert response.headers["location"] == "/admin"


@pytest.mark.parametrize(
    ("name", "role", "password", "message"),
    [
        ("Bad Name", "admin", PASSWORD, "operator name"),
        ("ok", "owner", PASSWORD, "role 'owner'"),
        ("ok", "admin", "short", "at least 12"),
    ],
)
def test_operator_values_are_checked(store, name, role, password, message):
    with pytest.raises(operators.OperatorError, match=message):
        operators.add(store, name, role, password)


def test_the_last_admin_cannot_be_removed(store):
    operators.add(store, "only", "admin", PASSWORD)
    with pytest.raises(operators.OperatorError, match="last admin"):
        operators.remove(store, "only")
