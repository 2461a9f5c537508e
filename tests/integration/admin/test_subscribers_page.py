"""Console subscribers: search and pages for every role; unsubscribe, mark bounced, delete,
import (with its per-line report and progress) and export for admins only."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timezone

import pytest

from distributor import subscribers
from distributor.store.models import DeliveryRow, EditionRunRow
from tests.integration.admin.conftest import form_token


def token_of(client) -> str:
    return form_token(client.get("/admin").text)  # the logout form carries one


def add(settings, store, email: str, **prefs) -> subscribers.Subscriber:
    found, _ = subscribers.subscribe(settings, store, email, **prefs)
    return found


def ledger_row(store, subscriber_id: int, *, status: str, reply: str) -> int:
    slot = datetime(2026, 11, 30, 1, 30, tzinfo=timezone.utc)
    with store.session() as session:
        run = EditionRunRow(edition="morning", slot=slot, timezone="", local_slot=slot.strftime("%Y-%m-%dT%H:%M:%S"), attempt=0, window_start=slot, window_end=slot,
                            status="sent", article_keys=[])
        session.add(run)
        session.flush()
        session.add(DeliveryRow(run_id=run.id, subscriber_id=subscriber_id, status=status, reply=reply, attempts=1))
        return run.id


def test_every_role_searches_by_address_status_and_section(clients, console, settings):
    _, store = console
    add(settings, store, "anna@example.org", sections="sports", confirmed=True)
    add(settings, store, "bob@example.org", sections="nation", confirmed=True)
    add(settings, store, "carla@example.net", confirmed=True)  # every section
    add(settings, store, "dan_x@example.org")  # pending
    for client in clients.values():
        page = client.get("/admin/subscribers", params={"q": "EXAMPLE.org"})
        assert page.status_code == 200
        assert {"anna@example.org", "bob@example.org", "dan_x@example.org"} <= set(re.findall(r">([\w.]+@[\w.]+)</a>", page.text))
        assert "carla@example.net" not in page.text
    viewer = clients["viewer"]
    found = viewer.get("/admin/subscribers.json", params={"section": "sports", "status": "confirmed"}).json()
    assert [s["email"] for s in found["subscribers"]] == ["anna@example.org", "carla@example.net"]
    assert found["total"] == 2 and found["counts"]["pending"] == 1
    # LIKE wildcards in the search are plain characters.
    assert [s["email"] for s in viewer.get("/admin/subscribers.json", params={"q": "n_x"}).json()["subscribers"]] == ["dan_x@example.org"]
    assert viewer.get("/admin/subscribers.json", params={"q": "%"}).json()["total"] == 0
    assert viewer.get("/admin/subscribers", params={"status": "nope"}).status_code == 422
    assert viewer.get("/admin/subscribers", params={"section": "nope"}).status_code == 422


def test_the_list_is_paged_fifty_at_a_time(clients, console, settings):
    _, store = console
    for n in range(120):
        add(settings, store, f"reader{n:03}@example.org", confirmed=True)
    viewer = clients["viewer"]
    first = viewer.get("/admin/subscribers.json").json()
    third = viewer.get("/admin/subscribers.json", params={"page": 3}).json()
    assert (first["total"], first["pages"], len(first["subscribers"]), len(third["subscribers"])) == (120, 3, 50, 20)
    assert third["subscribers"][-1]["email"] == "reader119@example.org"
    page = viewer.get("/admin/subscribers", params={"page": 2}).text
    assert "page 2 of 3" in page and "page=1" in page and "page=3" in page


def test_a_subscribers_page_shows_preferences_state_and_deliveries(clients, console, settings):
    _, store = console
    s = add(settings, store, "reader@example.org", sections="sports economy", timezone="Europe/Paris", format="text",
            name="Ana <b>", confirmed=True)
    run_id = ledger_row(store, s.id, status="deferred", reply="451 4.7.1 try later")
    viewer = clients["viewer"]
    page = viewer.get(f"/admin/subscribers/{s.id}")
    assert page.status_code == 200
    assert "Ana &lt;b&gt;" in page.text and "Europe/Paris" in page.text and "economy, sports" in page.text
    assert f'href="/admin/runs/{run_id}"' in page.text and "451 4.7.1 try later" in page.text
    assert "every later change is an event" in page.text and "source: cli" not in page.text
    assert "/unsubscribe" not in page.text and "/delete" not in page.text  # no forms for a viewer
    twin = viewer.get(f"/admin/subscribers/{s.id}.json").json()
    assert twin["subscriber"]["format"] == "text" and twin["deliveries"][0]["status"] == "deferred"
    assert [h["event"] for h in twin["history"]] == ["created", "confirmed"]
    assert "/delete" in clients["admin"].get(f"/admin/subscribers/{s.id}").text
    for path in ("/admin/subscribers/999999", "/admin/subscribers/99999999999", "/admin/subscribers/0.json"):
        assert viewer.get(path).status_code == 404, path


def test_viewers_and_editors_cannot_act_and_nothing_works_without_csrf(clients, console, settings):
    _, store = console
    s = add(settings, store, "keep@example.org", confirmed=True)
    for role in ("viewer", "editor"):
        client = clients[role]
        token = token_of(client)
        for action in ("unsubscribe", "bounce", "delete"):
            assert client.post(f"/admin/subscribers/{s.id}/{action}", data={"csrf_token": token, "confirm": "yes"}).status_code == 403
        assert client.post("/admin/subscribers/import", data={"csrf_token": token}, files={"file": ("a.csv", b"x@example.org\n")}).status_code == 403
        assert client.get("/admin/subscribers/export.csv").status_code == 403
        assert client.get("/admin/subscribers/import").status_code == 403
    admin = clients["admin"]
    for action in ("unsubscribe", "bounce", "delete"):
        assert admin.post(f"/admin/subscribers/{s.id}/{action}", data={"csrf_token": "forged", "confirm": "yes"}).status_code == 403
        assert admin.post(f"/admin/subscribers/{s.id}/{action}", data={"confirm": "yes"}).status_code == 403
    assert admin.post("/admin/subscribers/import", files={"file": ("a.csv", b"new@example.org\n")}).status_code == 403
    assert subscribers.get(store, s.id).status == "confirmed"
    assert subscribers.find(store, "new@example.org") is None


def test_no_session_no_page_and_no_action(console, settings):
    import httpx

    base, store = console
    s = add(settings, store, "keep@example.org", confirmed=True)
    with httpx.Client(base_url=base, trust_env=False) as anonymous:
        assert anonymous.get("/admin/subscribers").status_code == 303
        assert anonymous.get("/admin/subscribers.json").status_code == 401
        assert anonymous.get("/admin/subscribers/export.csv").status_code == 303
        assert anonymous.post(f"/admin/subscribers/{s.id}/delete", data={"confirm": "yes"}).status_code == 303
    assert subscribers.get(store, s.id) is not None


def test_an_admin_unsubscribes_marks_bounced_and_deletes(clients, console, settings):
    _, store = console
    one = add(settings, store, "one@example.org", confirmed=True)
    two = add(settings, store, "two@example.org", confirmed=True)
    ledger_row(store, two.id, status="sent", reply="250 ok")
    admin = clients["admin"]
    token = form_token(admin.get(f"/admin/subscribers/{one.id}").text)
    done = admin.post(f"/admin/subscribers/{one.id}/unsubscribe", data={"csrf_token": token})
    assert done.status_code == 303 and subscribers.get(store, one.id).status == "unsubscribed"
    assert "Unsubscribed." in admin.get(done.headers["location"]).text
    again = admin.post(f"/admin/subscribers/{one.id}/bounce", data={"csrf_token": token})
    assert "Nothing changed" in admin.get(again.headers["location"]).text
    assert subscribers.get(store, one.id).status == "unsubscribed"  # an unsubscribe outranks a bounce
    assert admin.post(f"/admin/subscribers/{two.id}/bounce", data={"csrf_token": token}).status_code == 303
    assert subscribers.get(store, two.id).status == "bounced"
    # Deleting needs the confirmation box; then the row and its ledger rows go.
    assert admin.post(f"/admin/subscribers/{two.id}/delete", data={"csrf_token": token}).status_code == 422
    gone = admin.post(f"/admin/subscribers/{two.id}/delete", data={"csrf_token": token, "confirm": "yes"})
    assert gone.status_code == 303 and subscribers.get(store, two.id) is None
    with store.session() as session:
        assert session.query(DeliveryRow).filter_by(subscriber_id=two.id).count() == 0
    assert "Deleted, with its delivery records." in admin.get(gone.headers["location"]).text
    assert admin.post("/admin/subscribers/999999/unsubscribe", data={"csrf_token": token}).status_code == 404
    assert admin.post(f"/admin/subscribers/{one.id}/nope", data={"csrf_token": token}).status_code == 404


def test_a_small_import_reports_each_bad_line_at_once(clients, console, settings, tmp_path):
    _, store = console
    add(settings, store, "old@example.org", confirmed=True)
    admin = clients["admin"]
    form = admin.get("/admin/subscribers/import")
    assert form.status_code == 200 and 'enctype="multipart/form-data"' in form.text
    data = (
        "email,sections,name\n"
        "new.one@example.org,sports,Ana\n"
        "not an address,,\n"
        "old@example.org,,\n"
        "new.two@example.org,nowhere,\n"
        "new.three@example.org,,\n"
    ).encode()
    answer = admin.post("/admin/subscribers/import", data={"csrf_token": form_token(form.text), "confirmed": "yes"},
                        files={"file": ("list.csv", data, "text/csv")})
    assert answer.status_code == 303
    job_path = answer.headers["location"]
    page = admin.get(job_path).text
    assert 'http-equiv="refresh"' not in page  # finished before the answer
    assert re.search(r'class="num added">2<', page) and re.search(r'class="num bad">2<', page)
    rows = re.findall(r'<tr><td class="num">(\d+)</td><td>([^<]+)</td></tr>', page.split('class="import-errors"')[1])
    assert [line for line, _ in rows] == ["3", "5"]
    assert "nowhere" in rows[1][1]
    twin = admin.get(job_path + ".json").json()
    assert twin["job"]["status"] == "done" and twin["job"]["percent"] == 100
    assert twin["report"]["added"] == 2 and twin["report"]["skipped"][0]["line"] == 4
    assert subscribers.find(store, "new.one@example.org").status == "confirmed"
    # Another role cannot read an import's report, and unknown jobs are 404.
    assert clients["viewer"].get(job_path + ".json").status_code == 403
    assert admin.get("/admin/subscribers/import/nope").status_code == 404


def test_an_import_without_consent_mails_confirmations_to_the_outbox(clients, console, settings):
    _, store = console
    admin = clients["admin"]
    answer = admin.post("/admin/subscribers/import", data={"csrf_token": token_of(admin)},
                        files={"file": ("l.csv", b"first@example.org\nsecond@example.org\n", "text/csv")})
    twin = admin.get(answer.headers["location"] + ".json").json()
    assert twin["report"]["added"] == 2 and twin["report"]["confirmations_sent"] == 2
    assert subscribers.find(store, "first@example.org").status == "pending"
    assert len(list((settings.outbox_dir).rglob("*.eml"))) == 2


def test_a_file_that_is_not_utf8_or_missing_is_named(clients, console):
    admin = clients["admin"]
    token = token_of(admin)
    bad = admin.post("/admin/subscribers/import", data={"csrf_token": token}, files={"file": ("l.csv", b"caf\xe9@example.org\n", "text/csv")})
    assert bad.status_code == 422 and "not UTF-8 text (byte 3)" in bad.text
    none = admin.post("/admin/subscribers/import", data={"csrf_token": token}, files={"file": ("", b"", "text/csv")})
    assert none.status_code == 422 and "Choose a CSV file" in none.text


def test_a_large_import_runs_as_a_job_with_a_progress_bar(clients, console, settings):
    _, store = console
    admin = clients["admin"]
    lines = ["email"] + [f"bulk{n:04}@example.org" for n in range(1200)] + ["broken"]
    answer = admin.post("/admin/subscribers/import", data={"csrf_token": token_of(admin), "confirmed": "yes"},
                        files={"file": ("bulk.csv", "\n".join(lines).encode(), "text/csv")})
    assert answer.status_code == 303
    job_path = answer.headers["location"]
    page = admin.get(job_path).text
    assert 'data-job="' in page and f'data-url="{job_path}.json"' in page and "<progress" in page
    seen = []
    while True:  # no clock: the job ends, and each answer is a consistent snapshot
        job = admin.get(job_path + ".json").json()
        seen.append(job["job"]["percent"])
        if job["job"]["status"] != "running":
            break
    assert seen == sorted(seen) and seen[-1] == 100
    assert job["job"]["status"] == "done"
    assert job["report"]["added"] == 1200 and job["report"]["errors"] == [{"line": 1202, "reason": job["report"]["errors"][0]["reason"]}]
    done_page = admin.get(job_path).text
    assert 'http-equiv="refresh"' not in done_page and "1200 added" in done_page


@pytest.mark.parametrize("status", ["", "confirmed"])
def test_an_admin_exports_csv_with_formula_guard(clients, console, settings, status):
    _, store = console
    add(settings, store, "a@example.org", name="=HYPERLINK(1)", confirmed=True)
    add(settings, store, "b@example.org")
    answer = clients["admin"].get("/admin/subscribers/export.csv", params={"status": status} if status else {})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"] and answer.headers["x-content-type-options"] == "nosniff"
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["email"] for r in rows] == (["a@example.org"] if status else ["a@example.org", "b@example.org"])
    assert rows[0]["name"] == "'=HYPERLINK(1)"


def test_an_import_reports_its_progress_chunk_by_chunk(settings, store):
    seen: list[tuple[str, int, int]] = []
    text = "\n".join(f"p{n:04}@example.org" for n in range(1100))
    report = subscribers.import_text(settings, store, text, confirmed=False, progress=lambda *a: seen.append(a))
    assert len(report.added) == 1100 and report.confirmations == 1100
    storing = [s for s in seen if s[0] == "storing"]
    mailing = [s for s in seen if s[0] == "mailing"]
    assert storing == [("storing", 0, 1100), ("storing", 500, 1100), ("storing", 1000, 1100), ("storing", 1100, 1100)]
    assert [done for _, done, _ in mailing] == list(range(100, 1101, 100)) and seen.index(mailing[0]) > seen.index(storing[-1])


def test_a_running_job_page_refreshes_itself_until_the_job_ends(settings, store):
    """The page of a job still running: its bar, the hook admin.js polls, and the meta
    refresh for browsers without JS; once done, neither (the job's work waits on an event,
    so "running" is a state the test holds, not a race)."""
    import threading

    from distributor import operators
    from distributor.web.admin.jobs import Jobs, progress_of
    from distributor.web.app import create_app
    from tests.fakes.webserver import serve
    from tests.integration.admin.conftest import PASSWORD, sign_in

    operators.add(store, "admin", "admin", PASSWORD)
    app = create_app(settings, store)
    app.state.admin_jobs = Jobs()
    release = threading.Event()

    def work(job):  # noqa: ANN001, ANN202
        progress_of(job)("storing", 250, 1000)
        release.wait()
        return subscribers.import_text(settings, store, "late@example.org\n", confirmed=True)

    with serve(app) as client:
        admin = sign_in(str(client.base_url), "admin")
        job, thread = app.state.admin_jobs.start("import", "admin", "held.csv", work)
        path = f"/admin/subscribers/import/{job.id}"
        running = admin.get(path).text
        assert '<meta http-equiv="refresh"' in running and 'data-live="yes"' in running
        assert '<progress max="100" value="25"' in running
        assert admin.get(path + ".json").json()["job"] == {**job.as_dict(), "percent": 25, "status": "running"}
        release.set()
        thread.join()
        done = admin.get(path).text
        assert '<meta http-equiv="refresh"' not in done and 'data-live="no"' in done and "1 added" in done
        admin.close()


def test_every_change_shows_as_an_event_and_an_admin_can_reinstate(clients, console, settings):
    from distributor import subscribers
    from distributor.inbound.events import events_for
    from tests.integration.admin.conftest import form_token

    _, store = console
    reader, _ = subscribers.subscribe(settings, store, "events@example.org", confirmed=True, source="cli")
    admin = clients["admin"]
    page = admin.get(f"/admin/subscribers/{reader.id}")
    token = form_token(page.text)
    assert admin.post(f"/admin/subscribers/{reader.id}/bounce", data={"csrf_token": token}).status_code == 303
    page = admin.get(f"/admin/subscribers/{reader.id}").text
    assert "bounced (operator)" in page, page[page.find("<h2>State"):page.find("<h2>Last")]
    assert "operator: admin" in page, page[page.find("<h2>State"):page.find("<h2>Last")]
    assert "/reinstate" in page, page[page.find("<div class=\"actions"):]
    # A viewer sees the history but cannot reinstate.
    viewer = clients["viewer"]
    assert viewer.post(f"/admin/subscribers/{reader.id}/reinstate", data={"csrf_token": form_token(viewer.get("/admin").text)}).status_code == 403
    assert admin.post(f"/admin/subscribers/{reader.id}/reinstate", data={"csrf_token": token}).status_code == 303
    assert subscribers.get(store, reader.id).status == "confirmed"
    assert [e.kind for e in events_for(store, reader.id)] == ["bounced", "reinstated"]
    twin = admin.get(f"/admin/subscribers/{reader.id}.json").json()
    assert [h["event"] for h in twin["history"]][-2:] == ["bounced (operator)", "reinstated (operator)"]
