"""Bounded Content-Encoding decoding, without a network: every step is small, any split of
the input decodes to the same bytes."""

from __future__ import annotations

import gzip
import zlib

import pytest

from distributor.ingest.decoding import STEP, Decoder, DecodeError, UnsupportedEncoding

TEXT = ("<rss><channel>" + "<item><title>मानसून 🇮🇳 monsoon</title></item>" * 400 + "</channel></rss>").encode()


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def decode(header: str, body: bytes, split: int | None = None) -> list[bytes]:
    decoder = Decoder.for_header(header)
    pieces = [body] if split is None else [body[i : i + split] for i in range(0, len(body), split)]
    out = [chunk for piece in pieces for chunk in decoder.feed(piece)]
    return out + list(decoder.finish())


CASES = {
    "gzip": ("gzip", gzip.compress(TEXT)),
    "members": ("gzip", gzip.compress(TEXT[:1000]) + gzip.compress(TEXT[1000:])),
    "zlib": ("deflate", zlib.compress(TEXT)),
    "raw deflate": ("deflate", _raw_deflate(TEXT)),
    "stacked": ("deflate, gzip", gzip.compress(zlib.compress(TEXT))),
    "padded": ("gzip", gzip.compress(TEXT) + b"\x00" * 7),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("split", [None, 1, 2, 3, 1000])
def test_any_split_of_the_input_decodes_to_the_same_bytes(case, split):
    header, body = CASES[case]
    assert b"".join(decode(header, body, split)) == TEXT


@pytest.mark.parametrize("header", ["gzip", "deflate"])
def test_every_step_is_at_most_one_step_long(header):
    zeros = bytes(20 * STEP)
    body = gzip.compress(zeros) if header == "gzip" else zlib.compress(zeros)
    chunks = decode(header, body)
    # The whole body arrives in one piece and still comes out in bounded steps.
    assert b"".join(chunks) == zeros and max(map(len, chunks)) == STEP and len(chunks) >= 20


def test_identity_and_unknown_labels_pass_the_body_through():
    for header in ["", "identity", "none", "utf-8"]:
        assert not Decoder.for_header(header).encoded
        assert b"".join(decode(header, TEXT)) == TEXT


@pytest.mark.parametrize("coding", ["br", "zstd", "compress"])
def test_codings_we_cannot_undo_are_named(coding):
    with pytest.raises(UnsupportedEncoding, match=f"unsupported Content-Encoding '{coding}'"):
        Decoder.for_header(f"gzip, {coding}")


def test_a_long_stack_of_codings_is_refused():
    with pytest.raises(UnsupportedEncoding, match="stacks 4 codings"):
        Decoder.for_header("gzip, gzip, gzip, gzip")


def test_corrupt_data_names_the_coding():
    with pytest.raises(DecodeError, match="cannot decode the deflate response"):
        decode("deflate", b"\x78\x9c" + b"\xff" * 40)
