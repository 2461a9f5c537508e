"""Console schedules and runs pages: what each role may do, and what the pages show."""

from __future__ import annotations

import re

import pytest

from distributor import schedules
from tests.integration.admin.conftest import form_token


def csrf(client, path="/admin/schedules") -> str:
    return form_token(client.get(path).text)


def test_every_role_reads_schedules_with_next_slots(clients):
    for client in clients.values():
        page = client.get("/admin/schedules")
        assert page.status_code == 200
        assert 'id="morning"' in page.text and "0 7 * * *" in page.text
        assert len(re.findall(r"class=\"next-slots\"", page.text)) >= 4
    twin = clients["viewer"].get("/admin/schedules.json").json()
    morning = next(s for s in twin["schedules"] if s["edition"] == "morning")
    assert morning["cron"] == "0 7 * * *" and len(morning["next"]) == 3


def test_a_viewer_sees_no_forms_and_cannot_change_anything(clients, console):
    _, store = console
    viewer = clients["viewer"]
    page = viewer.get("/admin/schedules").text
    assert "/check" not in page and "Run now" not in page
    token = form_token(viewer.get("/admin").text)  # the logout form carries one
    for path, data in [
        ("/admin/schedules/morning/check", {"cron": "0 8 * * *"}),
        ("/admin/schedules/morning/save", {"cron": "0 8 * * *"}),
        ("/admin/schedules/morning/pause", {}),
        ("/admin/schedules/morning/run-now", {"confirm": "yes"}),
    ]:
        assert viewer.post(path, data={**data, "csrf_token": token}).status_code == 403, path
    assert viewer.get("/admin/schedules/morning/run-now").status_code == 403


def test_an_editor_checks_then_saves_a_schedule(clients, console, settings):
    _, store = console
    editor = clients["editor"]
    token = csrf(editor)
    checked = editor.post("/admin/schedules/morning/check", data={"csrf_token": token, "times": "06:30", "days": "mon,tue,wed,thu,fri"})
    assert checked.status_code == 200
    assert "30 6 * * 1,2,3,4,5" in checked.text
    slots = re.findall(r"<li>(\w{3}) \d\d \w{3} \d{4} 06:30", checked.text)
    assert len(slots) == 5 and set(slots) <= {"Mon", "Tue", "Wed", "Thu", "Fri"}
    # Nothing is saved by looking.
    assert next(s for s in schedules.load(settings, store) if s.edition == "morning").cron == "0 7 * * *"
    saved = editor.post("/admin/schedules/morning/save", data={"csrf_token": token, "cron": "30 6 * * 1,2,3,4,5"})
    assert saved.status_code == 303
    row = next(s for s in schedules.load(settings, store) if s.edition == "morning")
    assert (row.cron, row.changed_by) == ("30 6 * * 1,2,3,4,5", "operator")


def test_a_bad_cron_is_named_and_nothing_changes(clients, console, settings):
    _, store = console
    editor = clients["editor"]
    answer = editor.post("/admin/schedules/morning/check", data={"csrf_token": csrf(editor), "cron": "61 7 * * *"})
    assert answer.status_code == 422 and "is not a valid 5-field cron expression" in answer.text


def test_pause_resume_reset_need_the_csrf_token(clients, console, settings):
    _, store = console
    editor = clients["editor"]
    assert editor.post("/admin/schedules/evening/pause", data={"csrf_token": "forged"}).status_code == 403
    assert not next(s for s in schedules.load(settings, store) if s.edition == "evening").paused
    assert editor.post("/admin/schedules/evening/pause", data={"csrf_token": csrf(editor)}).status_code == 303
    assert next(s for s in schedules.load(settings, store) if s.edition == "evening").paused
    assert "badge\">paused" in editor.get("/admin/schedules").text
    assert editor.post("/admin/schedules/evening/resume", data={"csrf_token": csrf(editor)}).status_code == 303
    assert not next(s for s in schedules.load(settings, store) if s.edition == "evening").paused


def test_run_now_confirms_with_counts_then_opens_a_run(clients, console, settings):
    from distributor import subscribers

    _, store = console
    for n in range(3):
        subscribers.subscribe(settings, store, f"reader{n}@example.org", confirmed=True)
    editor = clients["editor"]
    confirm = editor.get("/admin/schedules/morning/run-now")
    assert confirm.status_code == 200
    assert re.search(r'class="recipient-count">3 subscriber', confirm.text)
    assert re.search(r'class="article-count">\d+ article', confirm.text)
    opened = editor.post("/admin/schedules/morning/run-now", data={"csrf_token": form_token(confirm.text), "confirm": "yes"})
    assert opened.status_code == 303
    run_id = int(opened.headers["location"].rsplit("/", 1)[1])
    run_page = editor.get(f"/admin/runs/{run_id}")
    assert run_page.status_code == 200 and f"Run #{run_id}: morning" in run_page.text
    twin = editor.get(f"/admin/runs/{run_id}.json").json()
    assert twin["run"]["edition"] == "morning" and "percent" in twin["progress"]
    listing = editor.get("/admin/runs").text
    assert f'href="/admin/runs/{run_id}"' in listing


@pytest.mark.parametrize("path", ["/admin/runs/0", "/admin/runs/99999999999", "/admin/runs/123456", "/admin/runs/99999999999.json"])
def test_unknown_runs_are_404(clients, path):
    assert clients["viewer"].get(path).status_code == 404


def test_unknown_edition_is_404(clients):
    assert clients["editor"].get("/admin/schedules/nope/run-now").status_code == 404
