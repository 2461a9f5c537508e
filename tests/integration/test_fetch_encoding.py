"""Compressed responses: ordinary gzip and deflate feeds parse, bombs are stopped in bounded memory.

A real HTTP server on 127.0.0.1 serves each body with its Content-Encoding. The bombs
(1 GiB of zeros, about 1 MB compressed) are built when the module loads, from one
repeated deflate segment, so no large fixture is committed. Memory is measured as the
growth of the peak RSS of a fresh child process during the fetch, against a baseline
child that fetches an ordinary gzip feed.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import threading
import zlib
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from distributor.errors import FeedError
from distributor.ingest.feeds import parse_feed
from distributor.ingest.fetch import fetch
from distributor.settings import IngestConfig
from tests.conftest import settings_for
from tests.integration.test_fetch import FEED

MIB = 1024 * 1024
CAP = 10 * MIB  # the shipped ingest.max_bytes
BOMB_MIB = 1024  # decoded size of each bomb
# What a bomb may add to the fetching process's peak RSS beyond the cap: allocator slack
# and the last decoded chunk. Today's decoding inflates a whole 64 KB network read at once
# (about 64 MB of zeros), so the measured growth was many times the cap.
MARGIN = 2 * MIB
REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 7, 4, 7, 0, tzinfo=timezone.utc)


def _zero_segments(mib: int) -> bytes:
    """Raw deflate of `mib` MiB of zeros: one full-flush segment per MiB, repeated.

    After a full flush the compressor forgets its history, so every MiB of zeros
    compresses to the same bytes: repeating one segment is exact and takes no time.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    segment = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return segment * mib + compressor.flush()


def _gzip_bomb(mib: int) -> bytes:
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(bytes(MIB), crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + _zero_segments(mib) + struct.pack("<II", crc, (mib * MIB) & 0xFFFFFFFF)


def _deflate_bomb(mib: int) -> bytes:
    adler = 1
    for _ in range(mib):
        adler = zlib.adler32(bytes(MIB), adler)
    return b"\x78\xda" + _zero_segments(mib) + struct.pack(">I", adler)


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


HALF = len(FEED) // 2
# path -> (Content-Encoding, body)
BODIES: dict[str, tuple[str, bytes]] = {
    "/feed.gz": ("gzip", gzip.compress(FEED)),
    "/feed.x-gzip": ("x-gzip", gzip.compress(FEED)),
    "/feed.deflate": ("deflate", zlib.compress(FEED)),
    # Some servers send raw deflate (no zlib header) under "deflate".
    "/feed.raw-deflate": ("deflate", _raw_deflate(FEED)),
    # Concatenated gzip members are one valid gzip stream (RFC 1952 section 2.2).
    "/feed.members": ("gzip", gzip.compress(FEED[:HALF]) + gzip.compress(FEED[HALF:])),
    # Codings are listed in the order they were applied.
    "/feed.twice": ("deflate, gzip", gzip.compress(zlib.compress(FEED))),
    "/feed.identity": ("identity", FEED),
    "/feed.br": ("br", b"\x1b\x03\x00\xf8\xa5\x12\x00"),
    "/corrupt.gz": ("gzip", gzip.compress(FEED)[:40] + b"\x00garbage\xff" * 20),
    "/bomb.gz": ("gzip", _gzip_bomb(BOMB_MIB)),
    "/bomb.deflate": ("deflate", _deflate_bomb(BOMB_MIB)),
    # A bomb hidden in a second gzip member, after a harmless first one.
    "/bomb.members": ("gzip", gzip.compress(FEED) + _gzip_bomb(BOMB_MIB)),
}


SEEN_ACCEPT_ENCODING: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        SEEN_ACCEPT_ENCODING.append(self.headers.get("Accept-Encoding", ""))
        encoding, body = BODIES.get(self.path, ("identity", b""))
        self.send_response(200 if self.path in BODIES else 404)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading at its cap, as it should


@pytest.fixture(scope="module")
def base_url():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _config(max_bytes: int = CAP) -> IngestConfig:
    return IngestConfig(allow_private=("127.0.0.1",), max_bytes=max_bytes)


@pytest.mark.parametrize(
    "path", ["/feed.gz", "/feed.x-gzip", "/feed.deflate", "/feed.raw-deflate", "/feed.members", "/feed.twice", "/feed.identity"]
)
def test_encoded_feeds_decode_to_the_same_bytes_and_parse(base_url, path, tmp_path):
    result = fetch(base_url + path, config=_config())
    assert result.body == FEED
    parsed = parse_feed(
        result.body, settings=settings_for(tmp_path), source="arena", base_url=result.base_url, now=NOW
    )
    assert sorted(a.key for a in parsed.articles) == ["na-fetch-1", "na-fetch-2"]


def test_we_ask_only_for_codings_we_decode(base_url):
    # Whatever compression libraries happen to be installed, we decode gzip and deflate.
    fetch(base_url + "/feed.gz", config=_config())
    assert SEEN_ACCEPT_ENCODING[-1] == "gzip, deflate"


def test_a_coding_we_cannot_decode_is_named(base_url):
    with pytest.raises(FeedError) as caught:
        fetch(base_url + "/feed.br", config=_config())
    assert "unsupported Content-Encoding 'br'" in caught.value.reason


def test_a_corrupt_gzip_body_is_a_feed_error(base_url):
    with pytest.raises(FeedError) as caught:
        fetch(base_url + "/corrupt.gz", config=_config())
    assert caught.value.reason.startswith("cannot decode the gzip response")


@pytest.mark.parametrize("path", ["/bomb.gz", "/bomb.deflate", "/bomb.members"])
def test_bombs_are_refused_naming_the_cap(base_url, path):
    # Above the compressed size (about 1 MB), so Content-Length alone does not stop it.
    cap = 2 * MIB
    with pytest.raises(FeedError) as caught:
        fetch(base_url + path, config=_config(max_bytes=cap))
    assert caught.value.reason == f"response larger than {cap} bytes (ingest.max_bytes) once decoded"


_CHILD = """
import json, sys
from distributor.errors import FeedError
from distributor.ingest.fetch import fetch
from distributor.settings import IngestConfig

def status(key):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) for line in lines if line.startswith(key + ":"))

config = IngestConfig(allow_private=("127.0.0.1",), max_bytes=int(sys.argv[2]))
try:
    # Reset the peak to what the process holds now, so imports do not count.
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
except OSError:
    pass  # then the peak of the imports is included: a looser bound, still a bound
before = status("VmRSS")
try:
    outcome = {"bytes": len(fetch(sys.argv[1], config=config).body)}
except FeedError as exc:
    outcome = {"error": exc.reason}
outcome["growth_kib"] = status("VmHWM") - before
print(json.dumps(outcome))
"""


def _fetch_in_a_child(url: str) -> dict:
    """Fetch in a fresh interpreter; the growth of its peak RSS (KiB) during the fetch.

    Not getrusage's ru_maxrss: a child started by fork/vfork and exec reports the larger
    of its own peak and its parent's (the pytest process), which hides what we measure.
    VmHWM in /proc/self/status is the child's own peak.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, url, str(CAP)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for VmHWM")
@pytest.mark.parametrize("path", ["/bomb.gz", "/bomb.deflate", "/bomb.members"])
def test_a_bomb_never_holds_more_than_the_cap_plus_a_margin(base_url, path):
    baseline = _fetch_in_a_child(base_url + "/feed.gz")
    assert baseline["bytes"] == len(FEED)
    bomb = _fetch_in_a_child(base_url + path)
    assert "larger than" in bomb["error"] and "ingest.max_bytes" in bomb["error"]
    growth = (bomb["growth_kib"] - baseline["growth_kib"]) * 1024
    assert growth < CAP + MARGIN, f"peak RSS grew by {growth / MIB:.1f} MiB for a {CAP / MIB:.0f} MiB cap"
