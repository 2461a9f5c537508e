"""The pure rules of email dispatch: SMTP reply classes, SMTP_URL, variants, backoff, decisions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from distributor.channels.contracts import SendResult
from distributor.channels.outbox import outbox_name
from distributor.channels.smtp import SmtpChannel, classify, dot_stuff, is_bad_address, parse_smtp_url
from distributor.delivery import email as dispatch
from distributor.errors import ConfigError

NOW = datetime(2026, 11, 26, 1, 31, tzinfo=timezone.utc)
DEADLINE = NOW + timedelta(hours=12)
SECTIONS = ["nation", "states", "international", "politics", "opinion", "economy", "sports", "entertainment"]


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (250, "sent"),
        (251, "sent"),
        (421, "temporary"),
        (450, "temporary"),
        (451, "temporary"),
        (452, "temporary"),
        (552, "temporary"),  # Mailman's rule: usually "mailbox full", which clears
        (500, "permanent"),
        (550, "permanent"),
        (551, "permanent"),
        (553, "permanent"),
        (554, "permanent"),
        (None, "temporary"),  # no reply at all: refused, dropped, timed out
        (354, "temporary"),  # a server answering out of turn
        (199, "temporary"),
    ],
)
def test_classify(code, outcome):
    assert classify(code) == outcome


def _result(outcome: str, code: int | None, reply: str) -> SendResult:
    return SendResult("1-1", "reader@example.com", outcome, code, reply)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("outcome", "code", "reply", "bounce"),
    [
        ("permanent", 550, "550 5.1.1 <x@example.com>: Recipient address rejected: User unknown", True),
        ("permanent", 550, "550 5.1.10 Recipient address rejected: null MX", True),
        ("permanent", 553, "553 5.1.3 Bad recipient address syntax", True),
        ("permanent", 550, "550 Requested action not taken: mailbox unavailable", False),  # no enhanced code
        ("permanent", 554, "554 5.7.1 Message rejected as spam", False),  # policy, not the address
        ("permanent", 550, "550 5.1.1.5 is not an enhanced code", False),
        ("temporary", 450, "450 4.1.1 Recipient address verification pending", False),
        ("temporary", 552, "552 5.1.1 odd, but 552 stays temporary", False),
        ("sent", 250, "250 2.1.5 ok", False),
    ],
)
def test_is_bad_address(outcome, code, reply, bounce):
    assert is_bad_address(_result(outcome, code, reply)) is bounce


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://relay.example.com", ("smtp", "relay.example.com", 25, "", "", "auto", 30.0)),
        ("smtp://user:p%40ss@relay.example.com:587", ("smtp", "relay.example.com", 587, "user", "p@ss", "auto", 30.0)),
        ("smtps://user:pw@mail.example.com", ("smtps", "mail.example.com", 465, "user", "pw", "auto", 30.0)),
        ("smtp://h:2525?starttls=required&timeout=5", ("smtp", "h", 2525, "", "", "required", 5.0)),
        ("smtp://h?starttls=never", ("smtp", "h", 25, "", "", "never", 30.0)),
        ("SMTPS://h:1465?starttls=required", ("smtps", "h", 1465, "", "", "auto", 30.0)),
    ],
)
def test_parse_smtp_url(url, expected):
    t = parse_smtp_url(url)
    assert (t.scheme, t.host, t.port, t.username, t.password, t.starttls, t.timeout) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://user:hunter22@h", "scheme must be smtp or smtps"),
        ("smtp://user:hunter22@", "no host"),
        ("smtp://user:hunter22@h:99999", "not a valid URL"),
        ("smtp://user:hunter22@h?starttls=maybe", "starttls must be"),
        ("smtp://user:hunter22@h?timeout=soon", "timeout must be a number"),
        ("smtp://user:hunter22@h?timeout=0", "between 0 and 600"),
        ("smtp://user:hunter22@h?tls=1", "unknown parameter(s) tls"),
    ],
)
def test_bad_smtp_url_names_the_problem_not_the_password(url, message):
    with pytest.raises(ConfigError) as caught:
        parse_smtp_url(url)
    assert str(caught.value).startswith("SMTP_URL: ") and message in str(caught.value)
    assert "hunter22" not in str(caught.value)


def test_channel_repr_hides_the_password():
    channel = SmtpChannel("smtp://mailer:hunter22@relay.example.com:587")
    assert repr(channel) == "SmtpChannel(smtp://mailer@relay.example.com:587)"
    assert "hunter22" not in repr(channel.target)


@pytest.mark.parametrize(
    ("chosen", "key", "sections"),
    [
        (None, "all", SECTIONS),
        ([], "all", SECTIONS),
        (SECTIONS, "all", SECTIONS),  # everything chosen is the default variant
        (["sports"], "sports", ["sports"]),
        (["sports", "nation", "sports"], "nation+sports", ["nation", "sports"]),
        (["sports", "cricket"], "sports", ["sports"]),  # a section no longer configured
        (["cricket"], "all", SECTIONS),
    ],
)
def test_variant_key_and_sections(chosen, key, sections):
    assert dispatch.variant_key(chosen, SECTIONS) == key
    assert list(dispatch.variant_sections(key, SECTIONS)) == sections


@pytest.mark.parametrize(
    ("editions", "wanted"),
    [(None, True), (["morning", "evening"], True), (["evening"], False), ([], False)],
)
def test_wants_edition(editions, wanted):
    assert dispatch.wants_edition(editions, "morning", defaults={"morning"}) is wanted


def test_backoff_doubles_with_jitter_up_to_the_cap():
    first, low, high = dispatch.RETRY_FIRST, 1 - dispatch.RETRY_JITTER, 1 + dispatch.RETRY_JITTER
    for attempts in range(1, 12):
        base = min(first * 2 ** (attempts - 1), dispatch.RETRY_MAX)
        for salt in ("1", "2", "3"):
            wait = dispatch.backoff(attempts, salt)
            assert base * low <= wait < base * high
    assert dispatch.backoff(3, "7") == dispatch.backoff(3, "7")  # reproducible
    assert len({dispatch.backoff(1, str(i)) for i in range(50)}) > 40  # spread out
    assert dispatch.backoff(10_000, "x") < dispatch.RETRY_MAX * high  # no overflow


@pytest.mark.parametrize(
    ("result", "now", "status", "bounce", "deferred"),
    [
        (_result("sent", 250, "250 ok"), NOW, "sent", False, False),
        (_result("permanent", 550, "550 5.1.1 unknown"), NOW, "failed", True, False),
        (_result("permanent", 554, "554 5.7.1 spam"), NOW, "failed", False, False),
        (_result("temporary", 451, "451 later"), NOW, "deferred", False, True),
        (_result("temporary", None, "connection lost"), NOW, "deferred", False, True),
        (_result("temporary", 451, "451 later"), DEADLINE, "failed", False, False),
        (_result("temporary", 451, "451 later"), DEADLINE - timedelta(minutes=1), "deferred", False, True),
    ],
)
def test_decide(result, now, status, bounce, deferred):
    decision = dispatch.decide(result, attempts=1, deadline=DEADLINE, now=now, salt="9")
    assert (decision.status, decision.bounce, decision.next_attempt_at is not None) == (status, bounce, deferred)
    assert result.reply in decision.reply
    if deferred:
        assert now < decision.next_attempt_at <= DEADLINE  # never scheduled past the deadline


def test_a_skipped_delivery_is_deferred_without_being_charged():
    skipped = SendResult("1-1", "reader@example.com", "temporary", None, "not attempted: storm", skipped=True)
    refused = _result("temporary", 421, "421 4.7.0 busy")
    # Third claim of the row: two real attempts before this one.
    charged = dispatch.decide(refused, attempts=3, deadline=DEADLINE, now=NOW, salt="9")
    uncharged = dispatch.decide(skipped, attempts=3, deadline=DEADLINE, now=NOW, salt="9")
    assert (charged.status, charged.charged) == ("deferred", True)
    assert (uncharged.status, uncharged.charged) == ("deferred", False)
    # The wait is the one the last real attempt earned (the second), not a longer one.
    assert uncharged.next_attempt_at == NOW + dispatch.backoff(2, "9")
    assert charged.next_attempt_at == NOW + dispatch.backoff(3, "9")
    # A row never tried yet still waits the first backoff.
    assert dispatch.decide(skipped, attempts=1, deadline=DEADLINE, now=NOW, salt="9").next_attempt_at == NOW + dispatch.backoff(1, "9")
    # At the deadline it fails like any other, still uncharged.
    late = dispatch.decide(skipped, attempts=3, deadline=DEADLINE, now=DEADLINE, salt="9")
    assert (late.status, late.charged) == ("failed", False)


def test_split_parts():
    assert dispatch.split_parts(0) == []
    assert dispatch.split_parts(7) == [(0, 7)]  # a handful: one connection
    assert dispatch.split_parts(120) == [(0, 60), (60, 120)]
    parts = dispatch.split_parts(1000)
    assert len(parts) == dispatch.CONNECTIONS and parts[-1][1] == 1000
    big = dispatch.split_parts(5000)
    assert max(end - start for start, end in big) <= dispatch.MESSAGES_PER_CONNECTION
    assert [s for s, _ in big[1:]] == [e for _, e in big[:-1]]  # contiguous, nothing lost


@pytest.mark.parametrize(
    ("ref", "name"),
    [("12-3456", "12-3456.eml"), ("../../etc/passwd", "etc_passwd.eml"), ("", "message.eml"), ("a b/c", "a_b_c.eml")],
)
def test_outbox_names_are_safe(ref, name):
    assert outbox_name(ref) == name


@pytest.mark.parametrize(
    ("data", "wire"),
    [
        (b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n"),
        (b"a\r\nb", b"a\r\nb\r\n.\r\n"),  # a final line end is ensured
        (b".starts\r\n", b"..starts\r\n.\r\n"),
        (b"x\r\n.\r\ny\r\n", b"x\r\n..\r\ny\r\n.\r\n"),  # a lone "." would end the message
        (b"x\r\n..two\r\n", b"x\r\n...two\r\n.\r\n"),
        (b"x.y\r\n", b"x.y\r\n.\r\n"),
    ],
)
def test_dot_stuff_matches_smtplib(data, wire):
    import re
    import smtplib

    assert dot_stuff(data) == wire
    # What smtplib's data() would put on the wire for the same bytes.
    quoted = re.sub(rb"(?m)^\.", b"..", data)
    quoted = quoted if quoted.endswith(b"\r\n") else quoted + b"\r\n"
    assert wire == quoted + b".\r\n" and smtplib.bCRLF == b"\r\n"
