"""JSON from outside, parsed with a depth limit: the one parser of every JSON body we take.

Python's decoder recurses once per nesting level, so a few kilobytes of `[[[[...` raise
RecursionError deep inside it (a 500 at the HTTP edge). No payload of ours nests more
than a few levels; the limit refuses anything deeper before the decoder sees it, with a
message that says so. Sizes are capped by the caller, which reads the body.
"""

from __future__ import annotations

import json
import re
from typing import Any

from distributor.errors import DistributorError

# Ours nest at most 4 levels ({"articles": [{"tags": [...]}]}); 32 leaves room for any
# CMS's extra fields while staying far below the decoder's recursion limit.
MAX_DEPTH = 32

# A JSON string (escapes included), and the brackets that nest.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(rb"[\[\]{}]")


class JsonBodyError(DistributorError, ValueError):
    """The body is not JSON we will parse; the message says why, for the sender."""


def nesting_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in `body`, brackets in strings ignored."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub(b'""', body)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def loads(body: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of `body` (UTF-8, BOM allowed), or JsonBodyError naming the problem."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise JsonBodyError(f"body is not UTF-8 text (bad byte at offset {exc.start})") from None
    if nesting_depth(body) > max_depth:
        raise JsonBodyError(f"body is not valid JSON: nested deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError, and the NaN/Infinity refusal
        raise JsonBodyError(f"body is not valid JSON: {exc}") from None


def _refuse_constant(name: str) -> object:
    # Python's json accepts NaN and Infinity; JSON does not, and neither do we.
    raise ValueError(f"{name} is not allowed in JSON")
