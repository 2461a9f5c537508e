"""What a social service's rate-limit headers say: requests left and seconds to the reset,
in each form services send (pure: no network)."""

from __future__ import annotations

import pytest
from requests.structures import CaseInsensitiveDict

from distributor.channels.rate_headers import rate_headers

NOW = 1_795_000_000.0  # a Unix time: 2026-11-18 11:06:40 UTC


@pytest.mark.parametrize(
    ("headers", "prefix", "expected"),
    [
        # Mastodon: an ISO 8601 time, measured against the answer's Date (clocks differ).
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2026-11-27T06:35:00.250000Z",
          "Date": "Fri, 27 Nov 2026 06:30:00 GMT"}, "X-RateLimit-", (0, 300.25)),
        ({"x-ratelimit-remaining": "299", "x-ratelimit-reset": "2026-11-27T06:35:00Z",
          "date": "Fri, 27 Nov 2026 06:34:00 GMT"}, "X-RateLimit-", (299, 60.0)),
        # Bluesky's PDS: a Unix time.
        ({"ratelimit-remaining": "0", "ratelimit-reset": str(int(NOW) + 900)}, "RateLimit-", (0, 900.0)),
        # The IETF draft's form: seconds from now.
        ({"RateLimit-Remaining": "4", "RateLimit-Reset": "42"}, "RateLimit-", (4, 42.0)),
        # A reset already past waits for nothing; no headers say nothing.
        ({"ratelimit-remaining": "0", "ratelimit-reset": str(int(NOW) - 5)}, "RateLimit-", (0, 0.0)),
        ({}, "X-RateLimit-", (None, 0.0)),
        ({"X-RateLimit-Remaining": "many", "X-RateLimit-Reset": "soon"}, "X-RateLimit-", (None, 0.0)),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "soon"}, "X-RateLimit-", (0, 0.0)),
    ],
)
def test_remaining_and_reset(headers, prefix, expected):
    assert rate_headers(CaseInsensitiveDict(headers), prefix, now=NOW) == pytest.approx(expected)
