"""Signed subscriber links: one purpose each, bound to id and address, refused when
forged, expired or made for another purpose, with a reason a reader can act on."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest

from distributor.settings import Environment, Settings, WebConfig
from distributor.subscribers import (
    PURPOSES,
    TokenError,
    address_fingerprint,
    confirm_url,
    make_token,
    preferences_url,
    read_token,
    unsubscribe_url,
)

NOW = datetime(2025, 3, 10, 7, 0, tzinfo=timezone.utc)


def with_env(settings: Settings, **env) -> Settings:
    return Settings(settings.file, Environment(**env), settings.config_path)


@pytest.fixture
def keyed(settings) -> Settings:
    return with_env(settings, secret_key="unit-test-secret", public_base_url="https://news.example/")


@pytest.mark.parametrize("purpose", PURPOSES)
def test_round_trip_carries_id_and_address_fingerprint(keyed, purpose):
    token = make_token(keyed, purpose, 42, "Reader@example.com", now=NOW)
    claim = read_token(keyed, purpose, token, now=NOW + timedelta(hours=1))
    assert claim.purpose == purpose and claim.subscriber_id == 42
    assert claim.fingerprint == address_fingerprint(keyed, "reader@example.com")  # case-insensitive
    assert (claim.issued_at is not None) == (purpose == "confirm")


def test_token_does_not_disclose_the_address(keyed):
    for purpose in PURPOSES:
        token = make_token(keyed, purpose, 7, "private.reader@example.com", now=NOW)
        decoded = base64.urlsafe_b64decode(token.split(".")[0] + "==")
        assert b"private" not in decoded and b"example" not in decoded and "example" not in token


def test_purposes_ids_and_addresses_give_different_tokens(keyed):
    tokens = {make_token(keyed, p, 1, "a@example.com") for p in PURPOSES}
    assert len(tokens) == 3
    assert make_token(keyed, "unsubscribe", 1, "a@example.com") != make_token(keyed, "unsubscribe", 2, "a@example.com")
    assert make_token(keyed, "unsubscribe", 1, "a@example.com") != make_token(keyed, "unsubscribe", 1, "b@example.com")


def test_links_that_never_expire_are_the_same_in_every_email(keyed):
    # Deterministic: rendering is reproducible and one reader's links never change.
    assert unsubscribe_url(keyed, 5, "a@example.com") == unsubscribe_url(keyed, 5, "a@example.com")
    assert preferences_url(keyed, 5, "a@example.com") == preferences_url(keyed, 5, "a@example.com")


def test_urls_use_public_base_url_and_carry_a_readable_token(keyed):
    for builder, path, purpose in (
        (unsubscribe_url, "/unsubscribe/", "unsubscribe"),
        (preferences_url, "/preferences/", "preferences"),
        (confirm_url, "/confirm/", "confirm"),
    ):
        url = builder(keyed, 9, "a@example.com")
        assert url.startswith("https://news.example" + path)
        token = url.rsplit("/", 1)[1]
        assert read_token(keyed, purpose, token).subscriber_id == 9


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), id="signature changed"),
        pytest.param(lambda t: "W1s5OTksIngiXQ" + t[t.index("."):], id="payload swapped"),
        pytest.param(lambda t: t.split(".")[0] + ".", id="signature removed"),
    ],
)
@pytest.mark.parametrize("purpose", PURPOSES)
def test_forged_tokens_are_refused(keyed, purpose, tamper):
    token = tamper(make_token(keyed, purpose, 3, "a@example.com", now=NOW))
    with pytest.raises(TokenError) as info:
        read_token(keyed, purpose, token, now=NOW)
    assert info.value.problem in ("forged", "malformed")


@pytest.mark.parametrize("purpose", PURPOSES)
def test_a_token_signed_with_another_secret_is_forged(keyed, purpose):
    other = with_env(keyed, secret_key="someone-elses-secret")
    token = make_token(other, purpose, 3, "a@example.com", now=NOW)
    with pytest.raises(TokenError) as info:
        read_token(keyed, purpose, token, now=NOW)
    assert info.value.problem == "forged"
    assert "not valid" in info.value.message


@pytest.mark.parametrize("made_for", PURPOSES)
@pytest.mark.parametrize("used_for", PURPOSES)
def test_tokens_for_another_purpose_are_refused_and_named(keyed, made_for, used_for):
    token = make_token(keyed, made_for, 3, "a@example.com", now=NOW)
    if made_for == used_for:
        assert read_token(keyed, used_for, token, now=NOW).subscriber_id == 3
        return
    with pytest.raises(TokenError) as info:
        read_token(keyed, used_for, token, now=NOW)
    assert info.value.problem == "wrong_purpose"
    names = {"confirm": "confirmation link", "unsubscribe": "unsubscribe link", "preferences": "preferences link"}
    assert f"This is a{'n' if made_for == 'unsubscribe' else ''} {names[made_for]}" in info.value.message


def test_confirm_tokens_expire_after_the_configured_hours(keyed):
    token = make_token(keyed, "confirm", 3, "a@example.com", now=NOW)
    assert read_token(keyed, "confirm", token, now=NOW + timedelta(hours=72)).subscriber_id == 3
    with pytest.raises(TokenError) as info:
        read_token(keyed, "confirm", token, now=NOW + timedelta(hours=72, seconds=1))
    assert info.value.problem == "expired" and "72 hours" in info.value.message


def test_confirm_max_age_comes_from_config(keyed):
    short = Settings(keyed.file.model_copy(update={"web": WebConfig(confirm_max_age_hours=1)}), keyed.env, keyed.config_path)
    token = make_token(short, "confirm", 3, "a@example.com", now=NOW)
    with pytest.raises(TokenError, match="valid for 1 hours"):
        read_token(short, "confirm", token, now=NOW + timedelta(hours=2))


def test_unsubscribe_and_preferences_tokens_never_expire(keyed):
    for purpose in ("unsubscribe", "preferences"):
        token = make_token(keyed, purpose, 3, "a@example.com", now=NOW)
        assert read_token(keyed, purpose, token, now=NOW + timedelta(days=3650)).subscriber_id == 3


def test_an_expired_forgery_is_reported_as_forged(keyed):
    token = make_token(keyed, "confirm", 3, "a@example.com", now=NOW)
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(TokenError) as info:
        read_token(keyed, "confirm", forged, now=NOW + timedelta(days=30))
    assert info.value.problem == "forged"


@pytest.mark.parametrize("junk", ["", "x", "a.b.c.d", "%00", "A" * 600])
def test_junk_is_refused(keyed, junk):
    with pytest.raises(TokenError) as info:
        read_token(keyed, "unsubscribe", junk, now=NOW)
    assert info.value.problem in ("forged", "malformed")


def test_token_errors_never_show_the_secret(keyed):
    with pytest.raises(TokenError) as info:
        read_token(keyed, "confirm", "bogus.token", now=NOW)
    assert "unit-test-secret" not in str(info.value) and "unit-test-secret" not in repr(info.value)
