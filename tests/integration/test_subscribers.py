"""Subscribers on both stores: opt-in states, tokens against the database, preferences,
suppression, CSV import/export and the `subscribers` CLI."""

from __future__ import annotations

import csv
import email
import io
import re
from datetime import datetime, timedelta, timezone
from email import policy

import pytest
from typer.testing import CliRunner

from distributor import subscribers as subs
from distributor.editions import Window
from distributor.runs import open_run
from distributor.settings import Environment, Settings
from distributor.store.models import DeliveryRow

from tests.conftest import CONFIG

NOW = datetime(2025, 3, 10, 7, 0, tzinfo=timezone.utc)
ALL_SECTIONS = ("nation", "states", "international", "politics", "opinion", "economy", "sports", "entertainment")


@pytest.fixture
def keyed(settings) -> Settings:
    return Settings(settings.file, Environment(secret_key="integration-secret", public_base_url="https://news.example"), settings.config_path)


def outbox_message(settings: Settings, subscriber_id: int) -> email.message.EmailMessage:
    path = settings.outbox_dir / "email" / f"confirm-{subscriber_id}.eml"
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)


def confirm_token_from_outbox(settings: Settings, subscriber_id: int) -> str:
    message = outbox_message(settings, subscriber_id)
    text = message.get_body(("plain",)).get_content()
    [url] = re.findall(r"https?://\S+/confirm/\S+", text)
    return url.rsplit("/", 1)[1]


# --- addresses and preferences (pure) ---------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("Reader@Example.COM", "Reader@example.com"),
        ("  reader@example.com \n", "reader@example.com"),
        ("x@bücher.de", "x@xn--bcher-kva.de"),
        ("first.last+news@sub.example.org", "first.last+news@sub.example.org"),
    ],
)
def test_addresses_are_normalised(raw, stored):
    assert subs.normalise_address(raw) == stored


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("reader.example.com", "@-sign"),
        ("a@b@example.com", "@-sign"),
        ("reader@localhost", "period"),
        ("two..dots@example.com", "two periods"),
        ("ünï@example.com", "Internationalized characters"),
        ("a b@example.com", "SPACE"),
        ("x@example.com\r\nBcc: victim@example.com", "invalid characters"),
        ("x@[127.0.0.1]", "bracketed IP"),
        ("x@" + "a" * 250 + ".com", "too long"),
    ],
)
def test_bad_addresses_say_what_is_wrong(raw, reason):
    with pytest.raises(subs.InvalidAddress) as info:
        subs.normalise_address(raw)
    assert isinstance(info.value, ValueError)
    assert reason.lower() in str(info.value).lower()


def test_preferences_are_checked_against_the_config(settings):
    assert subs.check_sections(settings, "sports;politics nation") == ("nation", "politics", "sports")
    assert subs.check_sections(settings, ["Sports"]) == ("sports",)
    assert subs.check_sections(settings, list(ALL_SECTIONS)) is None  # all = all, new ones too
    assert subs.check_editions(settings, "evening morning") == ("morning", "evening")
    assert subs.default_editions(settings) == ("morning",)
    for call, field, bad in (
        (lambda: subs.check_sections(settings, "sports cricket"), "sections", "'cricket'"),
        (lambda: subs.check_sections(settings, []), "sections", "at least one"),
        (lambda: subs.check_editions(settings, "monthly"), "editions", "'monthly'"),
        (lambda: subs.check_timezone(settings, "Mars/Olympus"), "timezone", "'Mars/Olympus'"),
        (lambda: subs.check_format("pdf"), "format", "'pdf'"),
    ):
        with pytest.raises(subs.InvalidPreference) as info:
            call()
        assert info.value.field == field and bad in str(info.value) and str(info.value).startswith(field)
    assert subs.check_timezone(settings, "") == "Asia/Kolkata"
    assert subs.check_name("  Asha\r\nBcc: x  ") == "Asha Bcc: x"


# --- states -------------------------------------------------------------------------------


def test_subscribe_makes_a_pending_subscriber_with_defaults(keyed, store):
    subscriber, needs = subs.subscribe(keyed, store, "Reader@Example.com", now=NOW)
    assert needs and subscriber.status == "pending" and not subscriber.receives_mail
    assert subscriber.email == "Reader@example.com"
    assert subscriber.sections is None and subscriber.editions is None
    assert subscriber.wanted_editions(keyed) == ("morning",)
    assert (subscriber.timezone, subscriber.format, subscriber.source) == ("Asia/Kolkata", "html", "web")
    # Another case of the same address is the same subscriber.
    again, needs_again = subs.subscribe(keyed, store, "reader@EXAMPLE.com", sections="sports", now=NOW)
    assert again.id == subscriber.id and needs_again and again.sections == ("sports",)
    assert subs.find(store, "READER@example.com").id == subscriber.id
    assert subs.counts(store)["pending"] == 1


def test_bad_input_stores_nothing(keyed, store):
    with pytest.raises(subs.InvalidAddress):
        subs.subscribe(keyed, store, "not-an-address", now=NOW)
    with pytest.raises(subs.InvalidPreference, match="unknown edition 'hourly'"):
        subs.subscribe(keyed, store, "a@example.com", editions="hourly", now=NOW)
    assert subs.find(store, "a@example.com") is None


def test_double_opt_in_confirm_then_already_confirmed(keyed, store):
    subscriber, _ = subs.subscribe(keyed, store, "a@example.com", now=NOW)
    token = subs.make_token(keyed, "confirm", subscriber.id, subscriber.email, now=NOW)
    confirmed, changed = subs.confirm_with_token(keyed, store, token, now=NOW + timedelta(hours=1))
    assert changed and confirmed.status == "confirmed" and confirmed.receives_mail
    assert confirmed.confirmed_at == NOW + timedelta(hours=1)
    again, changed = subs.confirm_with_token(keyed, store, token, now=NOW + timedelta(hours=2))
    assert not changed and again.status == "confirmed"


def test_confirmed_subscriber_cannot_be_changed_through_subscribe(keyed, store):
    subscriber, _ = subs.subscribe(keyed, store, "a@example.com", sections="sports", now=NOW)
    subs.confirm(store, subscriber.id, now=NOW)
    after, needs = subs.subscribe(keyed, store, "a@example.com", sections="politics", format="text", now=NOW)
    assert not needs and after.sections == ("sports",) and after.format == "html"


@pytest.mark.parametrize("problem", ["forged", "expired", "wrong_purpose"])
def test_refused_confirm_tokens_change_nothing(keyed, store, problem):
    subscriber, _ = subs.subscribe(keyed, store, "a@example.com", now=NOW)
    token = {
        "forged": subs.make_token(keyed, "confirm", subscriber.id, subscriber.email, now=NOW)[:-3] + "abc",
        "expired": subs.make_token(keyed, "confirm", subscriber.id, subscriber.email, now=NOW - timedelta(hours=73)),
        "wrong_purpose": subs.make_token(keyed, "unsubscribe", subscriber.id, subscriber.email),
    }[problem]
    with pytest.raises(subs.TokenError) as info:
        subs.confirm_with_token(keyed, store, token, now=NOW)
    assert info.value.problem == problem
    assert subs.get(store, subscriber.id).status == "pending"


def test_unsubscribe_is_idempotent_and_resubscribing_needs_confirmation_again(keyed, store):
    subscriber, _ = subs.subscribe(keyed, store, "a@example.com", now=NOW)
    first_confirm = subs.make_token(keyed, "confirm", subscriber.id, subscriber.email, now=NOW)
    subs.confirm_with_token(keyed, store, first_confirm, now=NOW)
    gone, changed = subs.unsubscribe(store, subscriber.id, now=NOW + timedelta(minutes=5))
    assert changed and gone.status == "unsubscribed"
    assert subs.unsubscribe(store, subscriber.id, now=NOW + timedelta(minutes=6)) == (gone, False)

    back, needs = subs.subscribe(keyed, store, "a@example.com", sections="economy", now=NOW + timedelta(minutes=10))
    assert needs and back.status == "pending" and back.id == subscriber.id and back.sections == ("economy",)
    # The link from the first subscription no longer confirms: only the new email does.
    with pytest.raises(subs.TokenError) as info:
        subs.confirm_with_token(keyed, store, first_confirm, now=NOW + timedelta(minutes=11))
    assert info.value.problem == "superseded"
    assert subs.get(store, subscriber.id).status == "pending"
    fresh = subs.make_token(keyed, "confirm", back.id, back.email, now=NOW + timedelta(minutes=10))
    assert subs.confirm_with_token(keyed, store, fresh, now=NOW + timedelta(minutes=11))[0].status == "confirmed"


def test_operator_confirmation_never_overrides_a_readers_unsubscribe(keyed, store):
    subscriber, needs = subs.subscribe(keyed, store, "a@example.com", confirmed=True, source="cli", now=NOW)
    assert not needs and subscriber.status == "confirmed" and subscriber.confirmed_at == NOW
    subs.unsubscribe(store, subscriber.id, now=NOW)
    again, needs = subs.subscribe(keyed, store, "a@example.com", confirmed=True, source="cli", now=NOW)
    assert needs and again.status == "pending"
    # A pending address the operator vouches for is confirmed.
    subs.subscribe(keyed, store, "b@example.com", now=NOW)
    assert subs.subscribe(keyed, store, "b@example.com", confirmed=True, now=NOW)[0].status == "confirmed"


def test_bounces_and_complaints_suppress(keyed, store):
    a, _ = subs.subscribe(keyed, store, "a@example.com", confirmed=True, now=NOW)
    b, _ = subs.subscribe(keyed, store, "b@example.com", confirmed=True, now=NOW)
    assert subs.mark_bounced(store, a.id, now=NOW) and not subs.mark_bounced(store, a.id, now=NOW)
    assert subs.get(store, a.id).status == "bounced"
    assert subs.mark_complained(store, b.id, now=NOW) and not subs.mark_complained(store, b.id, now=NOW)
    # Unsubscribing a suppressed address keeps the stronger record.
    assert subs.unsubscribe(store, b.id, now=NOW)[1] is False and subs.get(store, b.id).status == "complained"
    # An unsubscribed address that bounces stays unsubscribed; a complaint outranks it.
    c, _ = subs.subscribe(keyed, store, "c@example.com", confirmed=True, now=NOW)
    subs.unsubscribe(store, c.id, now=NOW)
    assert not subs.mark_bounced(store, c.id, now=NOW) and subs.mark_complained(store, c.id, now=NOW)
    assert [s.email for s in subs.iter_subscribers(store, status="confirmed")] == []
    # The reader may come back, through confirmation.
    back, needs = subs.subscribe(keyed, store, "a@example.com", now=NOW)
    assert needs and back.status == "pending"


def test_preferences_change_only_what_is_given(keyed, store):
    subscriber, _ = subs.subscribe(keyed, store, "a@example.com", confirmed=True, now=NOW)
    updated = subs.set_preferences(keyed, store, subscriber.id, sections=["sports", "politics"], format="text")
    assert updated.sections == ("politics", "sports") and updated.format == "text" and updated.editions is None
    updated = subs.set_preferences(keyed, store, subscriber.id, editions="weekly", timezone="Europe/London")
    assert updated.editions == ("weekly",) and updated.timezone == "Europe/London" and updated.sections == ("politics", "sports")
    with pytest.raises(subs.InvalidPreference, match="'Europe/Londres'"):
        subs.set_preferences(keyed, store, subscriber.id, timezone="Europe/Londres", format="html")
    assert subs.get(store, subscriber.id) == updated  # nothing of a refused change is kept
    assert updated.status == "confirmed"


def test_tokens_of_a_purged_address_apply_to_nobody(keyed, store):
    old, _ = subs.subscribe(keyed, store, "old@example.com", confirmed=True, now=NOW)
    token = subs.make_token(keyed, "unsubscribe", old.id, old.email)
    assert subs.purge(store, "old@example.com") and not subs.purge(store, "old@example.com")
    # A new address may get the same id back (SQLite reuses the highest): still refused.
    new, _ = subs.subscribe(keyed, store, "new@example.com", confirmed=True, now=NOW)
    with pytest.raises(subs.TokenError) as info:
        subs.subscriber_for_token(keyed, store, "unsubscribe", token)
    assert info.value.problem == "stale"
    assert subs.get(store, new.id).status == "confirmed"


def test_purge_deletes_the_deliveries_too(keyed, store):
    subscriber, _ = subs.subscribe(keyed, store, "a@example.com", confirmed=True, now=NOW)
    run, _ = open_run(store, "morning", NOW, Window(NOW - timedelta(hours=24), NOW))
    with store.session() as session:
        session.add(DeliveryRow(run_id=run.id, subscriber_id=subscriber.id, status="sent"))
    assert subs.purge(store, "A@example.com")
    with store.session() as session:
        assert session.query(DeliveryRow).count() == 0
    assert subs.find(store, "a@example.com") is None


def test_iteration_walks_id_ranges(keyed, store):
    for n in range(5):
        subs.subscribe(keyed, store, f"r{n}@example.com", confirmed=n % 2 == 0, now=NOW)
    assert [s.email for s in subs.iter_subscribers(store, batch_size=2)] == [f"r{n}@example.com" for n in range(5)]
    assert [s.email for s in subs.iter_subscribers(store, status="pending", batch_size=1)] == ["r1@example.com", "r3@example.com"]
    with pytest.raises(ValueError, match="unknown status"):
        list(subs.iter_subscribers(store, status="active"))


# --- the confirmation email --------------------------------------------------------------


def test_confirmation_email_carries_a_working_link(keyed, store):
    subscriber, _ = subs.subscribe(keyed, store, "Reader@Example.com", now=NOW)
    [result] = subs.send_confirmations(keyed, [subscriber], now=NOW)
    assert result.outcome == "sent" and result.recipient == "Reader@example.com"
    message = outbox_message(keyed, subscriber.id)
    assert message["To"] == "Reader@example.com"
    token = confirm_token_from_outbox(keyed, subscriber.id)
    assert subs.confirm_with_token(keyed, store, token, now=NOW + timedelta(hours=1))[0].status == "confirmed"


# --- CSV -----------------------------------------------------------------------------------

BAD_IMPORT = """email,sections,editions,timezone,format,name
good1@example.com,sports;politics,morning evening,Europe/London,text,Asha
not-an-address,,,,,
good2@example.com,,,,,"Rohan, ""R"" Iyer"
bad-section@example.com,cricket,,,,
bad-tz@example.com,,,Mars/Olympus,,
"multi
line"@example.com,,,,,
bad-format@example.com,,,,pdf,
GOOD1@example.com,,,,,
existing@example.com,,,,,
good3@example.com,nation,weekly,,html,=cmd()
"""


def test_import_reports_bad_rows_by_line_and_imports_the_rest(keyed, store, tmp_path):
    subs.subscribe(keyed, store, "existing@example.com", sections="sports", now=NOW)
    path = tmp_path / "list.csv"
    path.write_text(BAD_IMPORT, encoding="utf-8")
    report = subs.import_csv(keyed, store, path, confirmed=True, now=NOW)
    assert report.ok and not report.fatal
    assert report.added == ["good1@example.com", "good2@example.com", "good3@example.com"]
    assert [(line, email) for line, email, _ in report.skipped] == [(11, "existing@example.com")]
    lines = {line: reason for line, reason in report.errors}
    assert sorted(lines) == [3, 5, 6, 7, 9, 10]
    assert "not-an-address" in lines[3] and "'cricket'" in lines[5] and "'Mars/Olympus'" in lines[6]
    assert "'pdf'" in lines[9] and "repeats line 2" in lines[10]
    assert "multi" in lines[7]  # the quoted field spans lines 7-8; the error names where it starts
    good1 = subs.find(store, "good1@example.com")
    assert (good1.status, good1.sections, good1.editions, good1.timezone, good1.format, good1.name, good1.source) == (
        "confirmed", ("politics", "sports"), ("morning", "evening"), "Europe/London", "text", "Asha", "import",
    )
    assert subs.find(store, "good2@example.com").name == 'Rohan, "R" Iyer'
    assert subs.find(store, "existing@example.com").sections == ("sports",)  # skipped, unchanged
    assert report.confirmations == 0


def test_import_without_confirmed_sends_confirmations(keyed, store, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("a@example.com\nb@example.com,sports\n", encoding="utf-8")  # no header row
    report = subs.import_csv(keyed, store, path, confirmed=False, now=NOW)
    assert report.added == ["a@example.com", "b@example.com"] and report.confirmations == 2
    b = subs.find(store, "b@example.com")
    assert b.status == "pending" and b.sections == ("sports",)
    token = confirm_token_from_outbox(keyed, b.id)
    assert subs.confirm_with_token(keyed, store, token, now=NOW)[0].status == "confirmed"


@pytest.mark.parametrize(
    ("content", "fatal"),
    [
        (None, "no such file"),
        (b"name,sections\nAsha,sports\n", "no 'email' column"),
        (b"email\n\xff\xfe@example.com\n", "not UTF-8"),
    ],
)
def test_unreadable_files_import_nothing(keyed, store, tmp_path, content, fatal):
    path = tmp_path / "list.csv"
    if content is not None:
        path.write_bytes(content)
    report = subs.import_csv(keyed, store, path, confirmed=True, now=NOW)
    assert not report.ok and fatal in report.fatal and report.added == []


def test_a_file_of_only_bad_rows_is_not_ok(keyed, store, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("email\nnope\nalso-nope\n", encoding="utf-8")
    report = subs.import_csv(keyed, store, path, confirmed=True, now=NOW)
    assert not report.ok and [line for line, _ in report.errors] == [2, 3]


def test_export_round_trips_and_keeps_suppressions(keyed, store, tmp_path, sqlite_store):
    a, _ = subs.subscribe(keyed, store, "a@example.com", sections="sports", editions="morning weekly", name="=HYPERLINK()", confirmed=True, now=NOW)
    b, _ = subs.subscribe(keyed, store, "b@example.com", confirmed=True, now=NOW)
    subs.unsubscribe(store, b.id, now=NOW)
    c, _ = subs.subscribe(keyed, store, "c@example.com", confirmed=True, now=NOW)
    subs.mark_bounced(store, c.id, now=NOW)
    out = io.StringIO()
    assert subs.export_csv(store, out) == 3
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["email"] for r in rows] == ["a@example.com", "b@example.com", "c@example.com"]
    assert rows[0]["sections"] == "sports" and rows[0]["editions"] == "morning;weekly"
    assert rows[0]["name"] == "'=HYPERLINK()"  # never a live formula in a spreadsheet
    assert rows[1]["sections"] == "" and rows[1]["status"] == "unsubscribed"

    path = tmp_path / "export.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    target = sqlite_store if store is not sqlite_store else None
    if target is None:
        for s in (a, b, c):
            subs.purge(store, s.email)
        target = store
    report = subs.import_csv(keyed, target, path, confirmed=True, now=NOW)
    assert report.added == ["a@example.com", "b@example.com", "c@example.com"] and report.errors == []
    moved = {s.email: s for s in subs.iter_subscribers(target)}
    assert moved["a@example.com"].name == "=HYPERLINK()" and moved["a@example.com"].editions == ("morning", "weekly")
    assert moved["b@example.com"].status == "unsubscribed" and moved["c@example.com"].status == "bounced"
    assert moved["a@example.com"].status == "confirmed"


# --- CLI -------------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'var' / 'distributor.db'}")
    monkeypatch.setenv("SECRET_KEY", "cli-secret")
    runner = CliRunner()

    def invoke(*args: str, code: int = 0):
        result = runner.invoke(app_(), ["--config", str(CONFIG), *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    invoke("init")
    return invoke


def app_():
    from distributor.cli import app

    return app


def test_cli_add_show_remove_purge(cli, tmp_path):
    out = cli("subscribers", "add", "Asha@Example.com", "--sections", "sports;politics", "--tz", "Europe/London", "--format", "text").output
    assert "Asha@example.com: pending" in out and "confirmation email sent" in out
    assert list((tmp_path / "var" / "outbox" / "email").glob("confirm-*.eml"))
    shown = cli("subscribers", "show", "asha@example.com").output
    assert "pending" in shown and "politics, sports" in shown and "Europe/London" in shown and "text" in shown
    assert "confirmed" in cli("subscribers", "add", "asha@example.com", "--confirmed").output
    assert "already confirmed" in cli("subscribers", "add", "asha@example.com").output
    assert "unsubscribed" in cli("subscribers", "remove", "asha@example.com").output
    assert "already unsubscribed" in cli("subscribers", "remove", "asha@example.com").output
    assert "does not override" in cli("subscribers", "add", "asha@example.com", "--confirmed").output
    assert "deleted" in cli("subscribers", "remove", "asha@example.com", "--purge").output
    cli("subscribers", "show", "asha@example.com", code=1)
    assert "'cricket'" in cli("subscribers", "add", "b@example.com", "--sections", "cricket", code=2).output
    assert "not a usable email address" in cli("subscribers", "add", "nope", code=2).output


def test_cli_import_export_list(cli, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text(BAD_IMPORT.replace("existing@example.com,,,,,\n", ""), encoding="utf-8")
    result = cli("subscribers", "import", str(path), "--confirmed")
    assert "line 3:" in result.output and "line 5:" in result.output and "3 added" in result.output
    exported = cli("subscribers", "export").stdout
    assert exported.splitlines()[0].startswith("email,status,sections")
    assert len(exported.splitlines()) == 4
    out = tmp_path / "out.csv"
    cli("subscribers", "export", "--out", str(out))
    assert out.read_text(encoding="utf-8") == exported
    listed = cli("subscribers", "list", "--status", "confirmed").stdout
    assert listed.count("confirmed") == 3
    cli("subscribers", "list", "--status", "active", code=2)
    bad = tmp_path / "bad.csv"
    bad.write_text("email\nnope\n", encoding="utf-8")
    cli("subscribers", "import", str(bad), code=1)
    cli("subscribers", "import", str(tmp_path / "missing.csv"), code=1)


def test_trending_kind_editions_are_not_offered_by_email(settings, store):
    from distributor.subscribers import InvalidPreference, check_editions, email_editions

    assert "trending" in settings.editions and "trending" not in email_editions(settings)
    assert check_editions(settings, ["morning", "weekly"]) == ("morning", "weekly")
    with pytest.raises(InvalidPreference, match="unknown edition 'trending'"):
        check_editions(settings, ["trending"])


# Addresses and names a spreadsheet would run as formulas, and ones that only look guarded.
HOSTILE = [
    ("=cmd|'/Ccalc'!A0@example.com", "=HYPERLINK(\"http://x\")"),
    ("+1-555@example.com", "+44 20"),
    ("-2+3@example.com", "-2+3"),
    ("sum@example.com", "@SUM(A1)"),
    ("'=already@example.com", "'=quoted"),
    ("''-two@example.com", "plain"),
]
GUARDS = ("=", "+", "-", "@", "\t", "\r")


def test_every_exported_text_cell_is_guarded_and_the_export_imports_back(keyed, store, tmp_path, sqlite_store):
    made = [subs.subscribe(keyed, store, email, name=name, confirmed=True, now=NOW)[0] for email, name in HOSTILE]
    out = io.StringIO()
    assert subs.export_csv(store, out) == len(HOSTILE)
    for row in csv.reader(io.StringIO(out.getvalue())):
        for cell in row:
            assert not cell.startswith(GUARDS), f"live formula in the export: {cell!r}"
    exported = {r["email"] for r in csv.DictReader(io.StringIO(out.getvalue()))}
    assert "'=cmd|'/Ccalc'!A0@example.com" in exported

    path = tmp_path / "export.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    target = sqlite_store if store is not sqlite_store else None
    if target is None:
        for s in made:
            subs.purge(store, s.email)
        target = store
    report = subs.import_csv(keyed, target, path, confirmed=True, now=NOW)
    assert report.errors == [] and sorted(report.added) == sorted(email for email, _ in HOSTILE)
    moved = {s.email: s.name for s in subs.iter_subscribers(target)}
    assert moved == dict(HOSTILE)


def test_cli_import_of_its_own_export_round_trips(cli, tmp_path):
    for email, name in HOSTILE:
        cli("subscribers", "add", "--name", name, "--confirmed", "--", email)
    out = tmp_path / "out.csv"
    cli("subscribers", "export", "--out", str(out))
    for email, _ in HOSTILE:
        cli("subscribers", "remove", "--purge", "--", email)
    result = cli("subscribers", "import", str(out), "--confirmed")
    assert f"{len(HOSTILE)} added" in result.output and "0 bad row" in result.output
    again = tmp_path / "again.csv"
    cli("subscribers", "export", "--out", str(again))
    strip_dates = lambda text: [row[:7] for row in csv.reader(io.StringIO(text))]  # noqa: E731
    assert strip_dates(again.read_text(encoding="utf-8")) == strip_dates(out.read_text(encoding="utf-8"))
    assert all(not cell.startswith(GUARDS) for row in strip_dates(out.read_text(encoding="utf-8")) for cell in row)
    assert "name      '=quoted" in cli("subscribers", "show", "--", "'=already@example.com").output
