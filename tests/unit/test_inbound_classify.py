"""The inbound classifier and tokens, on fixture messages (tests/fixtures/inbound/)."""

from __future__ import annotations

import pytest

from distributor.inbound import tokens
from distributor.inbound.classify import classify
from tests.conftest import FIXTURES

INBOUND = FIXTURES / "inbound"
READER = "asha.k@example.org"


def fixture(settings, name: str, delivery_id: int = 42, *, mid: str = "") -> bytes:
    text = (INBOUND / name).read_text("utf-8")
    values = {
        "{{RETURN_PATH}}": tokens.address_for(settings, "bounces", delivery_id),
        "{{UNSUBSCRIBE}}": tokens.address_for(settings, "unsubscribe", delivery_id),
        "{{RECIPIENT}}": READER,
        "{{BOUNCE_DOMAIN}}": settings.file.email.bounce_domain,
        "{{MID}}": mid,
    }
    for key, value in values.items():
        text = text.replace(key, value)
    return text.encode("utf-8")


def test_tokens_round_trip_and_refuse_forgery_and_the_other_purpose(settings):
    for delivery_id in (0, 1, 42, 2**31 + 5, 2**63):
        token = tokens.make_token(settings, "bounces", delivery_id)
        assert len(token) <= tokens.TOKEN_MAX and token == token.lower()
        assert tokens.read_token(settings, "bounces", token) == delivery_id
        assert tokens.read_token(settings, "bounces", token.upper()) == delivery_id  # relays may fold case
        assert tokens.read_token(settings, "unsubscribe", token) is None
    token = tokens.make_token(settings, "bounces", 42)
    forged = token[:-1] + ("a" if token[-1] != "a" else "b")
    assert tokens.read_token(settings, "bounces", forged) is None
    # Another delivery id with the MAC of 42's token.
    other = tokens.make_token(settings, "bounces", 43)
    assert tokens.read_token(settings, "bounces", other[:2] + token[2:]) in (None, 42)
    domain = settings.file.email.bounce_domain
    assert tokens.parse_address(settings, f"bounces+{token}@{domain}") == tokens.Address("bounces", 42)
    assert tokens.parse_address(settings, f"<Bounces+{token.upper()}@{domain.upper()}>") == tokens.Address("bounces", 42)
    assert tokens.parse_address(settings, f"unsubscribe+{token}@{domain}") is None
    assert tokens.parse_address(settings, f"bounces+{token}@example.com") is None
    assert tokens.parse_address(settings, f"postmaster@{domain}") is None
    assert tokens.parse_address(settings, f"bounces@{domain}") == tokens.Address("bounces", None)


@pytest.mark.parametrize(
    "name, status, words",
    [
        ("postfix_dsn.eml", "5.1.1", "User unknown in virtual mailbox table"),
        ("exchange_dsn.eml", "5.1.10", "RESOLVER.ADR.RecipientNotFound"),
        ("gmail_dsn.eml", "5.1.1", "does not exist"),
    ],
)
def test_dsns_are_hard_bounces_with_status_and_diagnostic(settings, name, status, words):
    raw = fixture(settings, name)
    found = classify(settings, raw, [tokens.address_for(settings, "bounces", 42)])
    assert (found.outcome, found.delivery_id, found.status, found.detector) == ("hard_bounce", 42, status, "dsn")
    assert words in found.diagnostic and found.recipient == READER and found.reporting_mta
    assert found.message_id.startswith("<") and found.actionable


def test_delayed_dsn_is_a_soft_bounce(settings):
    found = classify(settings, fixture(settings, "postfix_delayed.eml"), [tokens.address_for(settings, "bounces", 7)])
    assert (found.outcome, found.delivery_id, found.status) == ("soft_bounce", 7, "4.2.2")
    assert "Mailbox full" in found.diagnostic


def test_arf_complaint_to_the_plain_address_finds_the_delivery_in_the_quoted_original(settings):
    domain = settings.file.email.bounce_domain
    found = classify(settings, fixture(settings, "arf_complaint.eml", 9), [f"bounces@{domain}"])
    assert (found.outcome, found.delivery_id, found.detector) == ("complaint", 9, "arf")
    assert found.recipient == READER and "abuse" in found.diagnostic


def test_vacation_reply_is_ignored(settings):
    found = classify(settings, fixture(settings, "vacation.eml"), [tokens.address_for(settings, "bounces", 42)])
    assert found.outcome == "auto_reply" and not found.actionable


def test_mailto_unsubscribe_names_its_delivery(settings):
    found = classify(settings, fixture(settings, "mailto_unsubscribe.eml", 5), [tokens.address_for(settings, "unsubscribe", 5)])
    assert (found.outcome, found.delivery_id, found.detector) == ("unsubscribe", 5, "mailto")


def test_non_standard_qmail_bounce_through_flufl_bounce(settings):
    found = classify(settings, fixture(settings, "qmail_bounce.eml"), [tokens.address_for(settings, "bounces", 42)])
    assert (found.outcome, found.delivery_id, found.detector, found.status) == ("hard_bounce", 42, "flufl.bounce", "5.1.1")
    assert found.recipient == READER


def test_imap_mode_reads_the_delivery_headers(settings):
    # No envelope: the token comes from Delivered-To / To.
    found = classify(settings, fixture(settings, "gmail_dsn.eml", 11))
    assert (found.outcome, found.delivery_id) == ("hard_bounce", 11)
    found = classify(settings, fixture(settings, "mailto_unsubscribe.eml", 12))
    assert (found.outcome, found.delivery_id) == ("unsubscribe", 12)


def test_a_forged_token_names_no_delivery(settings):
    domain = settings.file.email.bounce_domain
    good = tokens.make_token(settings, "unsubscribe", 5)
    forged = f"unsubscribe+{good[:-2]}{'zz' if good[-2:] != 'zz' else 'yy'}@{domain}"
    raw = fixture(settings, "mailto_unsubscribe.eml", 5).replace(tokens.address_for(settings, "unsubscribe", 5).encode(), forged.encode())
    found = classify(settings, raw, [forged])
    assert found.delivery_id is None and not found.actionable


def test_garbage_is_unknown_and_not_actionable(settings):
    found = classify(settings, b"Subject: hello\r\n\r\nbuy now\r\n", [tokens.address_for(settings, "bounces", 42)])
    assert found.outcome == "unknown" and found.delivery_id == 42 and not found.actionable


def test_rendered_message_carries_the_tokenised_mailto_and_verp_sender(settings, tmp_path):
    from email import message_from_bytes, policy

    from distributor.render.email import Recipient, envelope_sender, render_variant
    from distributor.settings import EmailConfig
    from tests.conftest import settings_for
    from tests.unit.test_render_email import NOW, RUN_ID, fixture_edition

    variant = render_variant(settings, fixture_edition(), sections=None, run_id=RUN_ID, now=NOW)
    raw = variant.message(Recipient(email=READER, delivery_id=77))
    header = message_from_bytes(raw, policy=policy.default)["List-Unsubscribe"]
    assert f"<mailto:{tokens.address_for(settings, 'unsubscribe', 77)}?subject=unsubscribe>" in header
    assert message_from_bytes(raw, policy=policy.default)["Feedback-ID"] == f"morning:{RUN_ID}:newsarenaindia.com"
    assert envelope_sender(settings, 77) == tokens.address_for(settings, "bounces", 77)
    # No delivery (previews, test sends): the configured mailbox and From.
    plain = variant.message(Recipient(email=READER))
    assert "<mailto:unsubscribe@newsarenaindia.com?subject=unsubscribe>" in message_from_bytes(plain, policy=policy.default)["List-Unsubscribe"]
    assert envelope_sender(settings) == "brief@newsarenaindia.com"
    # No bounce domain: nothing changes from before.
    off = settings_for(tmp_path, email=settings.file.email.model_copy(update={"bounce_domain": ""}))
    assert envelope_sender(off, 77) == "brief@newsarenaindia.com"
    quiet = render_variant(off, fixture_edition(), sections=None, run_id=RUN_ID, now=NOW).message(Recipient(email=READER, delivery_id=77))
    assert b"unsubscribe+" not in quiet and b"mailto:unsubscribe@newsarenaindia.com" in quiet
    assert EmailConfig(bounce_domain="Bounces.Example.COM").bounce_domain == "bounces.example.com"
    with pytest.raises(ValueError):
        EmailConfig(bounce_domain="not a domain")
