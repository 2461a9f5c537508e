"""Webhook signing and verification: pure, no clock (every test passes `now`)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from distributor.errors import SignatureError
from distributor.ingest.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    PayloadError,
    normalise_signature,
    parse_payload,
    sign,
    signed_headers,
    verify,
)

SECRET = "s3cret-key-for-tests-only"
NOW = 1_751_609_820  # 2025-07-04T06:17:00Z
BODY = b'{"title": "Russia recognises Taliban government"}'
MAX_AGE = 300


def check(timestamp, signature, body=BODY, *, now=NOW, secret=SECRET):
    return verify(secret, timestamp, signature, body, now=now, max_age_seconds=MAX_AGE)


def reason_of(*args, **kwargs) -> str:
    with pytest.raises(SignatureError) as caught:
        check(*args, **kwargs)
    message = str(caught.value)
    assert SECRET not in message
    return message


def test_sign_is_hmac_sha256_over_timestamp_dot_body():
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == f"sha256={expected}"


def test_known_vector():
    # Fixed so a CMS implementer can check their code against ours.
    assert sign("key", 1700000000, b"{}") == (
        "sha256=" + hmac.new(b"key", b"1700000000.{}", hashlib.sha256).hexdigest()
    )


def test_signed_headers():
    headers = signed_headers(SECRET, NOW, BODY)
    assert headers == {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(NOW),
        SIGNATURE_HEADER: sign(SECRET, NOW, BODY),
    }


def test_good_signature_returns_the_timestamp():
    assert check(str(NOW), sign(SECRET, NOW, BODY)) == NOW


def test_upper_case_hex_and_surrounding_space_are_accepted():
    signature = sign(SECRET, NOW, BODY)
    assert check(f" {NOW} ", "sha256=" + signature[7:].upper() + " ") == NOW
    assert normalise_signature("sha256=" + signature[7:].upper()) == signature


def test_now_may_be_an_aware_datetime():
    now = datetime.fromtimestamp(NOW + 10, tz=UTC)
    assert check(str(NOW), sign(SECRET, NOW, BODY), now=now) == NOW


@pytest.mark.parametrize(
    "timestamp, signature, reason",
    [
        (None, "sha256=" + "0" * 64, f"missing {TIMESTAMP_HEADER} header"),
        ("", "sha256=" + "0" * 64, f"missing {TIMESTAMP_HEADER} header"),
        (str(NOW), None, f"missing {SIGNATURE_HEADER} header"),
        (str(NOW), "", f"missing {SIGNATURE_HEADER} header"),
    ],
)
def test_missing_headers(timestamp, signature, reason):
    assert reason_of(timestamp, signature) == reason


@pytest.mark.parametrize("timestamp", ["yesterday", "-5", "1751609820.5", "1e9", "9" * 40])
def test_malformed_timestamp(timestamp):
    assert reason_of(timestamp, sign(SECRET, NOW, BODY)).startswith(
        f"malformed {TIMESTAMP_HEADER} header"
    )


@pytest.mark.parametrize(
    "signature",
    ["deadbeef", "sha1=" + "0" * 40, "sha256=" + "0" * 63, "sha256=" + "g" * 64, "sha256="],
)
def test_malformed_signature(signature):
    assert reason_of(str(NOW), signature).startswith(f"malformed {SIGNATURE_HEADER} header")


def test_stale_timestamp():
    old = NOW - MAX_AGE - 1
    assert reason_of(str(old), sign(SECRET, old, BODY)) == (
        "timestamp too old: 301 s, more than 300 s (webhook.max_age_seconds)"
    )


def test_future_timestamp():
    ahead = NOW + MAX_AGE + 60
    assert reason_of(str(ahead), sign(SECRET, ahead, BODY)) == (
        "timestamp in the future by 360 s, more than 300 s (webhook.max_age_seconds)"
    )


def test_timestamps_at_the_edges_of_the_window_pass():
    for stamp in (NOW - MAX_AGE, NOW + MAX_AGE):
        assert check(str(stamp), sign(SECRET, stamp, BODY)) == stamp


def test_bad_signature_other_secret():
    assert reason_of(str(NOW), sign("another-secret", NOW, BODY)) == "bad signature"


def test_bad_signature_body_changed():
    assert reason_of(str(NOW), sign(SECRET, NOW, BODY), body=BODY + b" ") == "bad signature"


def test_bad_signature_timestamp_changed():
    # The timestamp is signed: moving it forward to dodge the age check breaks the signature.
    assert reason_of(str(NOW + 1), sign(SECRET, NOW, BODY)) == "bad signature"


# --- payload shape -------------------------------------------------------------------------


def test_payload_one_article():
    assert parse_payload(b'{"title": "T"}') == [{"title": "T"}]


def test_payload_batch():
    assert parse_payload(b'{"articles": [{"title": "A"}, 7]}') == [{"title": "A"}, 7]


def test_payload_with_utf8_bom_and_devanagari():
    body = "\ufeff{\"title\": \"भारत 🇮🇳\"}".encode()
    assert parse_payload(body) == [{"title": "भारत 🇮🇳"}]


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"{not json", "body is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        (b"\xff\xfe", "body is not UTF-8 text (bad byte at offset 0)"),
        (b"[1, 2]", 'body must be a JSON object: one article, or {"articles": [article, ...]}'),
        (b'{"articles": {}}', '"articles" must be a list of article objects'),
        (b'{"articles": []}', '"articles" is an empty list'),
        (b'{"read_minutes": NaN}', "body is not valid JSON: NaN is not allowed in JSON"),
    ],
)
def test_payload_errors(body, reason):
    with pytest.raises(PayloadError) as caught:
        parse_payload(body)
    assert str(caught.value) == reason
