"""fetch() against a real HTTP server on 127.0.0.1, and the address guard.

The server is http.server in a thread. It serves a feed with ETag and Last-Modified and
answers 304 to matching conditional requests, redirects, oversize and slow bodies and
error statuses, and records every request it sees, so the tests can tell "refused
before connecting" from "connected and failed".
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from distributor.errors import FeedError
from distributor.ingest.fetch import (
    AllowList,
    FetchResult,
    Validators,
    address_problem,
    check_addresses,
    fetch,
    scrub_url,
)
from distributor.ingest.pipeline import ingest_source
from distributor.settings import IngestConfig
from distributor.store.models import FeedStateRow
from tests.conftest import settings_for

ETAG = '"feed-v1"'
LAST_MODIFIED = "Fri, 04 Jul 2025 06:17:00 GMT"
FEED = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0">
<channel>
  <title>News Arena</title>
  <link>https://www.newsarenaindia.com/</link>
  <description>Latest news</description>
  <item>
    <title>Russia recognises Taliban government in Afghanistan</title>
    <link>https://www.newsarenaindia.com/international/russia-recognises-taliban-government/</link>
    <guid isPermaLink="false">na-fetch-1</guid>
    <category>International</category>
    <pubDate>Fri, 04 Jul 2025 06:17:00 GMT</pubDate>
    <description>Moscow becomes the first capital to formally recognise the Taliban.</description>
  </item>
  <item>
    <title>Monsoon covers the whole country ahead of schedule</title>
    <link>https://www.newsarenaindia.com/nation/monsoon-covers-country/</link>
    <guid isPermaLink="false">na-fetch-2</guid>
    <category>Nation</category>
    <pubDate>Fri, 04 Jul 2025 05:00:00 GMT</pubDate>
    <description>The IMD says the monsoon reached every state nine days early.</description>
  </item>
</channel>
</rss>
"""
OVERSIZE = 5000  # bytes, against a 1024-byte cap in the tests that use it


class FeedServer:
    """A feed server on 127.0.0.1 that records what it was asked."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.full_answers = 0
        # Set at teardown so slow handlers stop waiting and the server can shut down.
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        with self.lock:
            return [path for path, _ in self.requests]

    def headers_of(self, path: str) -> list[dict[str, str]]:
        with self.lock:
            return [headers for p, headers in self.requests if p == path]


def _handler_for(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            with server.lock:
                server.requests.append(
                    (path, {k.lower(): v for k, v in self.headers.items()})
                )
            try:
                self.route(path, parse_qs(urlsplit(self.path).query))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up on purpose (size cap, timeout)

        def route(self, path: str, query: dict[str, list[str]]) -> None:
            if path == "/feed.xml":
                return self.feed()
            if path == "/bare-304":
                if self.headers.get("If-Modified-Since"):
                    return self.answer(304, b"")
                return self.answer(200, FEED, {"Last-Modified": LAST_MODIFIED})
            if path.startswith("/redirect/"):
                return self.redirect_chain(int(path.rsplit("/", 1)[1]))
            if path == "/to":
                return self.answer(302, b"", {"Location": query["location"][0]})
            if path == "/no-location":
                return self.answer(302, b"")
            if path == "/big":
                return self.answer(200, b"x" * OVERSIZE)
            if path == "/big-chunked":
                return self.chunked([b"y" * 500] * (OVERSIZE // 500))
            if path == "/slow":
                server.stop.wait(30)
                return self.answer(200, FEED)
            if path == "/trickle":
                return self.trickle()
            if path.startswith("/status/"):
                return self.answer(int(path.rsplit("/", 1)[1]), b"nope")
            return self.answer(404, b"not here")

        def feed(self) -> None:
            validators = {"ETag": ETAG, "Last-Modified": LAST_MODIFIED}
            if (
                self.headers.get("If-None-Match") == ETAG
                or self.headers.get("If-Modified-Since") == LAST_MODIFIED
            ):
                return self.answer(304, b"", validators)
            return self.answer(
                200, FEED, {**validators, "Content-Type": "application/rss+xml; charset=utf-8"}
            )

        def redirect_chain(self, remaining: int) -> None:
            # Mix the three forms of Location: document-relative, path-absolute, full URL.
            if remaining > 2:
                location = str(remaining - 1)
            elif remaining == 2:
                location = "/redirect/1"
            else:
                location = server.url("/feed.xml")
            self.answer(302, b"", {"Location": location})

        def answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status != 304:
                self.wfile.write(body)
            if status == 200:
                with server.lock:
                    server.full_answers += 1

        def chunked(self, chunks) -> None:
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in chunks:
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

        def trickle(self) -> None:
            # Each chunk comes well within any per-read timeout; only a limit on the
            # whole fetch stops it. Bounded so a broken client cannot keep it forever.
            def drip():
                for _ in range(600):
                    if server.stop.wait(0.05):
                        return
                    yield b"<"

            self.chunked(drip())

    return Handler


@pytest.fixture
def server():
    feed_server = FeedServer()
    feed_server.thread.start()
    yield feed_server
    feed_server.stop.set()
    feed_server.httpd.shutdown()
    feed_server.httpd.server_close()


def loopback(**limits) -> IngestConfig:
    """The config of these tests: the loopback test server allow-listed."""
    return IngestConfig(allow_private=("127.0.0.1",), **limits)


def refused_reason(location: str, config: IngestConfig | None = None) -> str:
    with pytest.raises(FeedError) as caught:
        fetch(location, config=config or IngestConfig())
    return caught.value.reason


# --- conditional GET ---------------------------------------------------------------------


def test_first_fetch_returns_body_and_validators(server):
    result = fetch(server.url("/feed.xml"), config=loopback())
    assert result == FetchResult(
        body=FEED,
        base_url=server.url("/feed.xml"),
        validators=Validators(etag=ETAG, last_modified=LAST_MODIFIED),
        status=200,
    )
    [headers] = server.headers_of("/feed.xml")
    assert headers["user-agent"] == IngestConfig().user_agent
    assert headers["host"] == f"127.0.0.1:{server.port}"
    assert "if-none-match" not in headers and "if-modified-since" not in headers


def test_second_fetch_with_validators_is_not_modified(server):
    config = loopback()
    first = fetch(server.url("/feed.xml"), config=config)
    second = fetch(server.url("/feed.xml"), config=config, validators=first.validators)
    assert second.body is None and second.status == 304
    assert second.validators == first.validators
    sent = server.headers_of("/feed.xml")[1]
    assert sent["if-none-match"] == ETAG
    assert sent["if-modified-since"] == LAST_MODIFIED
    assert server.full_answers == 1


def test_304_without_validators_keeps_the_old_ones(server):
    old = Validators(etag='"kept"', last_modified=LAST_MODIFIED)
    result = fetch(server.url("/bare-304"), config=loopback(), validators=old)
    assert result.body is None and result.validators == old


def test_full_answer_replaces_old_validators(server):
    stale = Validators(etag='"old"', last_modified="Thu, 01 Jan 2025 00:00:00 GMT")
    result = fetch(server.url("/feed.xml"), config=loopback(), validators=stale)
    assert result.body == FEED
    assert result.validators == Validators(etag=ETAG, last_modified=LAST_MODIFIED)


# --- redirects ---------------------------------------------------------------------------


def test_redirects_within_the_cap_are_followed(server):
    result = fetch(server.url("/redirect/3"), config=loopback(max_redirects=3))
    assert result.body == FEED
    assert result.base_url == server.url("/feed.xml")
    assert server.paths() == ["/redirect/3", "/redirect/2", "/redirect/1", "/feed.xml"]


def test_conditional_headers_follow_redirects(server):
    validators = Validators(etag=ETAG)
    result = fetch(server.url("/redirect/2"), config=loopback(), validators=validators)
    assert result.body is None
    assert server.headers_of("/feed.xml")[0]["if-none-match"] == ETAG


def test_redirects_over_the_cap_are_refused(server):
    reason = refused_reason(server.url("/redirect/4"), loopback(max_redirects=3))
    assert "too many redirects (more than 3" in reason
    assert "/feed.xml" not in server.paths()


def test_no_redirect_allowed_with_a_cap_of_zero(server):
    reason = refused_reason(server.url("/redirect/1"), loopback(max_redirects=0))
    assert "too many redirects" in reason


def test_redirect_without_location_is_an_error(server):
    assert "without a Location" in refused_reason(server.url("/no-location"), loopback())


def test_redirect_to_a_file_url_is_refused(server):
    reason = refused_reason(server.url("/to?location=file:///etc/passwd"), loopback())
    assert "unsupported scheme 'file'" in reason


def test_redirect_to_a_private_address_is_refused(server):
    reason = refused_reason(server.url("/to?location=http://10.0.0.1/feed.xml"), loopback())
    assert "redirect to http://10.0.0.1/feed.xml" in reason
    assert "10.0.0.1 (private address)" in reason


def test_redirect_to_the_metadata_service_is_refused(server):
    target = "http://169.254.169.254/latest/meta-data/"
    reason = refused_reason(server.url(f"/to?location={target}"), loopback())
    assert "169.254.169.254 (link-local address)" in reason


# --- size and time limits ----------------------------------------------------------------


def test_oversize_body_with_content_length_is_refused_early(server):
    reason = refused_reason(server.url("/big"), loopback(max_bytes=1024))
    assert reason == f"response larger than 1024 bytes (ingest.max_bytes): Content-Length is {OVERSIZE}"


def test_oversize_body_without_content_length_is_cut_off(server):
    reason = refused_reason(server.url("/big-chunked"), loopback(max_bytes=1024))
    assert reason == "response larger than 1024 bytes (ingest.max_bytes)"


def test_body_at_the_cap_is_accepted(server):
    result = fetch(server.url("/big"), config=loopback(max_bytes=OVERSIZE))
    assert result.body == b"x" * OVERSIZE


def test_slow_response_times_out(server):
    reason = refused_reason(server.url("/slow"), loopback(timeout_seconds=0.5))
    assert reason == "timed out after 0.5 s (ingest.timeout_seconds)"


def test_trickling_response_is_stopped_by_the_whole_fetch_limit(server):
    reason = refused_reason(server.url("/trickle"), loopback(timeout_seconds=0.5))
    assert reason == "timed out after 0.5 s (ingest.timeout_seconds)"


# --- statuses and connection errors ------------------------------------------------------


@pytest.mark.parametrize("status, words", [(404, "HTTP 404 Not Found"), (500, "HTTP 500 Internal Server Error"), (403, "HTTP 403 Forbidden")])
def test_error_statuses_are_named(server, status, words):
    with pytest.raises(FeedError) as caught:
        fetch(server.url(f"/status/{status}"), config=loopback())
    assert (caught.value.reason, caught.value.status) == (words, status)


def test_a_failure_before_any_response_has_no_status(server):
    # The redirect answered 302; the refused next hop never answered at all.
    with pytest.raises(FeedError) as caught:
        fetch(server.url("/to?location=http://10.0.0.1/feed.xml"), config=loopback())
    assert caught.value.status is None and "private address" in caught.value.reason


def test_connection_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now that the probe is closed.
    reason = refused_reason(f"http://127.0.0.1:{port}/feed.xml", loopback())
    assert reason.startswith(f"could not connect to 127.0.0.1:{port}: ")


def test_unresolvable_host():
    reason = refused_reason("http://no-such-host.invalid/feed.xml")
    assert reason.startswith("cannot resolve host no-such-host.invalid")


def test_credentials_never_appear_in_errors_or_base_url(server):
    secret_url = server.url("/status/404", host="editor:hunter2@127.0.0.1")
    with pytest.raises(FeedError) as caught:
        fetch(secret_url, config=loopback())
    assert "hunter2" not in str(caught.value) and "editor" not in str(caught.value)
    result = fetch(server.url("/feed.xml", host="editor:hunter2@127.0.0.1"), config=loopback())
    assert result.base_url == server.url("/feed.xml")
    # The URL's credentials are still used for the request itself (Basic auth).
    assert server.headers_of("/feed.xml")[0]["authorization"].startswith("Basic ")


@pytest.mark.parametrize("location", ["ftp://example.com/feed.xml", "gopher://example.com/"])
def test_other_schemes_are_refused(location):
    assert "unsupported scheme" in refused_reason(location)


# --- the address guard -------------------------------------------------------------------


def test_loopback_is_refused_without_the_allow_list(server):
    reason = refused_reason(server.url("/feed.xml"))
    assert reason.startswith("refused: 127.0.0.1 (loopback address)")
    assert "ingest.allow_private" in reason
    assert server.paths() == []  # refused before connecting


def test_localhost_is_refused_after_resolution(server):
    reason = refused_reason(server.url("/feed.xml", host="localhost"))
    assert reason.startswith("refused: localhost resolves to ")
    assert "(loopback address)" in reason
    assert server.paths() == []


@pytest.mark.parametrize(
    "url, address, kind",
    [
        ("http://10.0.0.1/feed.xml", "10.0.0.1", "private"),
        ("http://192.168.1.1/feed.xml", "192.168.1.1", "private"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "link-local"),
        ("http://[::1]/feed.xml", "::1", "loopback"),
        ("http://[::ffff:127.0.0.1]/feed.xml", "::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("https://0.0.0.0/feed.xml", "0.0.0.0", "unspecified"),
        ("http://100.100.100.200/latest/meta-data/", "100.100.100.200", "non-public"),
    ],
)
def test_internal_addresses_are_refused(url, address, kind):
    assert refused_reason(url).startswith(f"refused: {address} ({kind} address)")


def test_allow_list_by_network(server):
    result = fetch(server.url("/feed.xml"), config=IngestConfig(allow_private=("127.0.0.0/8",)))
    assert result.body == FEED


def test_allow_list_by_host_name(server):
    config = IngestConfig(allow_private=("localhost",))
    assert fetch(server.url("/feed.xml", host="localhost"), config=config).body == FEED
    assert server.headers_of("/feed.xml")[0]["host"] == f"localhost:{server.port}"
    # The name is allowed, not the address: the same server by IP is still refused.
    assert "loopback" in refused_reason(server.url("/feed.xml"), config)


def test_allow_listing_one_address_does_not_open_others():
    reason = refused_reason("http://10.0.0.1/feed.xml", loopback())
    assert reason.startswith("refused: 10.0.0.1 (private address)")


@pytest.mark.parametrize(
    "text, problem",
    [
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("127.0.0.53", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.251", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "private"),
        ("100.64.0.1", "non-public"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:10.0.0.1", "IPv4-mapped private"),
        ("2002:7f00:1::", "6to4 loopback"),
        ("2002:a9fe:a9fe::", "6to4 link-local"),
        ("64:ff9b::a00:1", "NAT64 private"),
    ],
)
def test_address_problem(text, problem):
    assert address_problem(ipaddress.ip_address(text)) == problem


def test_every_resolved_address_must_pass():
    # A name resolving to one public and one internal address is refused: the
    # connection could go to either (and this is what DNS rebinding looks like).
    with pytest.raises(ValueError, match=r"feeds.example resolves to 10.0.0.7 \(private address\)"):
        check_addresses("feeds.example", ["93.184.216.34", "10.0.0.7"], AllowList.parse(()))
    check_addresses("feeds.example", ["93.184.216.34"], AllowList.parse(()))


def test_allow_list_covers_mapped_forms():
    allow = AllowList.parse(("10.0.0.0/8",))
    check_addresses("cms.internal", ["::ffff:10.0.0.7", "10.0.0.8"], allow)
    with pytest.raises(ValueError, match="192.168.0.1"):
        check_addresses("cms.internal", ["192.168.0.1"], allow)


def test_scrub_url():
    assert scrub_url("https://u:p@feeds.example:8443/a?b=1#c") == "https://feeds.example:8443/a?b=1#c"
    assert scrub_url("https://feeds.example/a") == "https://feeds.example/a"


# --- files -------------------------------------------------------------------------------


def test_file_path_and_file_url(tmp_path: Path):
    feed = tmp_path / "feed.xml"
    feed.write_bytes(FEED)
    for location in (str(feed), feed.as_uri()):
        assert fetch(location, config=IngestConfig()) == FetchResult(
            body=FEED, base_url="", validators=Validators()
        )


def test_missing_file(tmp_path: Path):
    missing = tmp_path / "nope.xml"
    reason = refused_reason(str(missing))
    assert reason == f"file not found: {missing}"


def test_oversize_file(tmp_path: Path):
    big = tmp_path / "big.xml"
    big.write_bytes(b"x" * OVERSIZE)
    assert "file larger than 1024 bytes" in refused_reason(str(big), IngestConfig(max_bytes=1024))


# --- the pipeline over HTTP ----------------------------------------------------------------


def test_ingest_source_over_http_twice_second_is_not_modified(server, store, tmp_path: Path):
    settings = settings_for(tmp_path, ingest=loopback())
    url = server.url("/feed.xml")

    first = ingest_source(settings, store, url, name="arena")
    assert first.ok, first.error
    assert sorted(a.key for a in first.new) == ["na-fetch-1", "na-fetch-2"]

    second = ingest_source(settings, store, url, name="arena")
    assert second.ok and second.not_modified
    assert (second.new, second.updated, second.unchanged) == ([], [], 0)
    assert "not modified" in second.summary()
    assert server.full_answers == 1
    assert server.headers_of("/feed.xml")[1]["if-none-match"] == ETAG
    with store.session() as session:
        state = session.get(FeedStateRow, url)
        assert (state.etag, state.last_modified, state.last_status) == (
            ETAG,
            LAST_MODIFIED,
            "not_modified",
        )


def test_ingest_source_reports_a_refused_address_and_carries_on(store, tmp_path: Path):
    settings = settings_for(tmp_path)
    report = ingest_source(settings, store, "http://169.254.169.254/feed.xml", name="meta")
    assert not report.ok
    assert report.error.startswith("refused: 169.254.169.254 (link-local address)")
