"""Reading a feed from a file path or an http(s) URL, the only network I/O of ingest.

`fetch` is the one function here that touches the network or the disk. Around it sit
small pure helpers (the address guard, URL scrubbing) that are tested without a network.

Network fetches are defended on every hop:
- only http and https (and, for operator-given locations, file paths and file:// URLs);
- before connecting, the host is resolved and *every* address it resolves to must be public
  (not loopback, private, link-local, multicast, reserved, unspecified, nor an IPv6 form
  embedding such an IPv4 address) unless `ingest.allow_private` names the host, the
  address or a network containing it;
- the connection then goes to the address that was checked (the URL's host is replaced
  by the address; the Host header and TLS SNI/certificate check keep the name), so a DNS
  answer that changes between the check and the connection (DNS rebinding) cannot
  redirect us to an internal address;
- redirects are followed here, one hop at a time, so each new host meets the same guard,
  and at most `ingest.max_redirects` of them;
- the body is streamed and cut off at `ingest.max_bytes`, counted after decoding: gzip
  and deflate are undone here in bounded steps (see decoding.py), so a compression bomb
  holds at most the cap plus one step before it is refused;
- `ingest.timeout_seconds` bounds each network wait *and* the whole fetch, so a server
  trickling one byte at a time cannot hold a worker for longer than that.
"""

from __future__ import annotations

import functools
import io
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit
from urllib.request import url2pathname

import httpx

from distributor.errors import FeedError
from distributor.ingest.decoding import ACCEPT_ENCODING, Decoder, DecodeError, UnsupportedEncoding
from distributor.settings import IngestConfig

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_NETWORK_SCHEMES = ("http", "https")
_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
# NAT64 (RFC 6052): the last 32 bits are an IPv4 address the gateway will connect to.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class Validators:
    """Conditional-GET validators remembered from the previous fetch."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FetchResult:
    """`body` is None when the server answered 304 Not Modified (nothing to do)."""

    body: bytes | None
    base_url: str  # final URL after redirects ("" for files), for resolving relative links
    validators: Validators
    status: int | None = None  # HTTP status of the final response; None for files


# --- pure helpers -------------------------------------------------------------------------


def scrub_url(url: str) -> str:
    """The URL without user:password, safe for messages, logs and stored links."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparseable URL)"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address stands for, when the kernel or a gateway will
    actually connect to that IPv4 address."""
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    if address in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_problem(address: IPAddress) -> str | None:
    """Why an address is refused by default ("loopback", "private"...), None if public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            # The embedded IPv4 address is where the packets go: judge that one, so
            # ::ffff:127.0.0.1 is refused and ::ffff:8.8.8.8 is not.
            label, inner = embedded
            problem = address_problem(inner)
            return f"{label} {problem}" if problem else None
    # Order matters only for the wording: the most specific name first.
    for name, flag in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return name
    # Whatever is left that IANA does not call globally routable (e.g. 100.64.0.0/10,
    # carrier-grade NAT, where some clouds put their metadata service).
    if not address.is_global:
        return "non-public"
    return None


@dataclass(frozen=True)
class AllowList:
    """`ingest.allow_private` parsed once: host names and networks (a bare IP is a /32)."""

    names: frozenset[str]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def parse(cls, entries: tuple[str, ...] | list[str]) -> AllowList:
        names: set[str] = set()
        networks = []
        for entry in entries:
            entry = entry.strip()
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                names.add(entry.lower().rstrip("."))
        return cls(frozenset(names), tuple(networks))

    def allows(self, host: str, address: IPAddress) -> bool:
        """True when the host name, the address or a network holding it is listed."""
        if host.lower().rstrip(".") in self.names:
            return True
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address):
            embedded = _embedded_ipv4(address)
            if embedded is not None:
                candidates.append(embedded[1])
        return any(
            candidate.version == network.version and candidate in network
            for candidate in candidates
            for network in self.networks
        )


def check_addresses(host: str, addresses: list[str], allow: AllowList) -> None:
    """Raise ValueError naming the first refused address; every address must pass.

    All of them, not just the first: the connection may go to any, and a name that
    resolves to one public and one internal address is exactly a rebinding attempt.
    """
    for text in addresses:
        address = ipaddress.ip_address(text)
        problem = address_problem(address)
        if problem is None or allow.allows(host, address):
            continue
        where = host if _same_address(host, address) else f"{host} resolves to {address}"
        raise ValueError(
            f"refused: {where} ({problem} address); list the host or address in "
            f"ingest.allow_private if this feed is trusted"
        )


def _same_address(host: str, address: IPAddress) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")) == address
    except ValueError:
        return False


# --- files --------------------------------------------------------------------------------


def _file_path(location: str) -> Path:
    if not location.lower().startswith("file:"):
        return Path(location)
    parts = urlsplit(location)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"file URL on another host ({parts.netloc}) is not supported")
    return Path(url2pathname(unquote(parts.path)))


def _read_file(location: str, config: IngestConfig) -> FetchResult:
    try:
        path = _file_path(location)
    except ValueError as exc:
        raise FeedError(location, str(exc)) from None
    try:
        with path.open("rb") as handle:
            body = handle.read(config.max_bytes + 1)
    except FileNotFoundError:
        raise FeedError(location, f"file not found: {path}") from None
    except IsADirectoryError:
        raise FeedError(location, f"is a directory, not a feed file: {path}") from None
    except PermissionError:
        raise FeedError(location, f"permission denied reading {path}") from None
    except OSError as exc:
        raise FeedError(location, f"cannot read {path}: {exc.strerror or exc}") from None
    if len(body) > config.max_bytes:
        raise FeedError(location, f"file larger than {config.max_bytes} bytes (ingest.max_bytes)")
    # Relative links in a local sample belong to the site, not to the disk: an empty
    # base makes the parser fall back to site.base_url.
    return FetchResult(body=body, base_url="", validators=Validators())


# --- network ------------------------------------------------------------------------------


def _resolve(host: str, port: int) -> list[str]:
    """Every address the host resolves to, in resolver order, without duplicates.

    getaddrinfo blocks with the system resolver's own timeout (resolv.conf), which
    ingest.timeout_seconds does not shorten: the one wait not bounded by our deadline.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """One verifying TLS context for every fetch (loading the CA bundle costs ~20 ms).

    trust_env=True here only lets SSL_CERT_FILE / SSL_CERT_DIR choose the CA store; the
    clients ignore proxy variables (trust_env=False) because a proxy would resolve the
    name itself and undo the address pinning.
    """
    return httpx.create_ssl_context(trust_env=True)


class _Fetcher:
    """One fetch of one URL: state shared by its hops (deadline, TLS context, names)."""

    def __init__(self, location: str, config: IngestConfig, validators: Validators) -> None:
        self.source = scrub_url(location)
        self.config = config
        self.validators = validators
        self.allow = AllowList.parse(config.allow_private)
        self.deadline = time.monotonic() + config.timeout_seconds
        self.ssl_context = _ssl_context()
        self.status: int | None = None  # of the current hop's response, once it came

    def fail(self, reason: str) -> FeedError:
        return FeedError(self.source, reason, status=self.status)

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.timed_out()
        return left

    def timed_out(self) -> FeedError:
        return self.fail(
            f"timed out after {self.config.timeout_seconds:g} s (ingest.timeout_seconds)"
        )

    def headers(self) -> dict[str, str]:
        headers = {
            "User-Agent": self.config.user_agent,
            "Accept": _ACCEPT,
            # Only what decoding.py undoes, whatever compression libraries are installed.
            "Accept-Encoding": ACCEPT_ENCODING,
        }
        if self.validators.etag:
            headers["If-None-Match"] = self.validators.etag
        if self.validators.last_modified:
            headers["If-Modified-Since"] = self.validators.last_modified
        return headers

    def run(self, location: str) -> FetchResult:
        url = self.parse(location, what="URL")
        redirects = 0
        while True:
            with httpx.Client(
                verify=self.ssl_context, trust_env=False, follow_redirects=False
            ) as client:
                # A fresh client per hop: connections are pooled by address, and a
                # connection opened (and certificate-checked) for one name must never
                # carry a request for another name served from the same address.
                self.status = None
                response = self.send(client, url, redirected=redirects > 0)
                self.status = response.status_code
                try:
                    if response.status_code in _REDIRECT_STATUSES:
                        url = self.next_hop(url, response)
                        redirects += 1
                        if redirects > self.config.max_redirects:
                            raise self.fail(
                                f"too many redirects (more than {self.config.max_redirects}, "
                                f"ingest.max_redirects)"
                            )
                        continue
                    return self.finish(url, response)
                finally:
                    response.close()

    def parse(self, text: str, *, what: str) -> httpx.URL:
        try:
            url = httpx.URL(text)
        except (httpx.InvalidURL, ValueError) as exc:
            raise self.fail(f"invalid {what} {scrub_url(text)!r}: {exc}") from None
        if url.scheme not in _NETWORK_SCHEMES:
            raise self.fail(f"unsupported scheme {url.scheme!r} in {what} {scrub_url(text)}")
        if not url.host:
            raise self.fail(f"no host in {what} {scrub_url(text)}")
        return url

    def next_hop(self, current: httpx.URL, response: httpx.Response) -> httpx.URL:
        location = response.headers.get("location")
        if not location:
            raise self.fail(f"HTTP {response.status_code} redirect without a Location header")
        try:
            target = current.join(location)
        except (httpx.InvalidURL, ValueError) as exc:
            raise self.fail(f"invalid redirect Location {scrub_url(location)!r}: {exc}") from None
        return self.parse(str(target), what="redirect to")

    def send(self, client: httpx.Client, url: httpx.URL, *, redirected: bool) -> httpx.Response:
        host = url.raw_host.decode("ascii")
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = _resolve(host, port)
        except (socket.gaierror, UnicodeError) as exc:
            raise self.fail(f"cannot resolve host {host}: {getattr(exc, 'strerror', exc)}") from None
        try:
            check_addresses(host, addresses, self.allow)
        except ValueError as exc:
            prefix = f"redirect to {scrub_url(str(url))}: " if redirected else ""
            raise self.fail(f"{prefix}{exc}") from None

        extensions = {}
        if url.scheme == "https":
            try:
                ipaddress.ip_address(host)
            except ValueError:
                # Certificate and SNI stay on the name although we dial the address.
                extensions["sni_hostname"] = host
        headers = {**self.headers(), "Host": url.netloc.decode("ascii")}
        last_error: httpx.ConnectError | None = None
        for address in addresses:
            request = client.build_request(
                "GET",
                url.copy_with(host=address),
                headers=headers,
                extensions=extensions,
                timeout=httpx.Timeout(min(self.config.timeout_seconds, self.remaining())),
            )
            try:
                return client.send(request, stream=True)
            except httpx.ConnectError as exc:
                # Like socket.create_connection: try the next checked address.
                last_error = exc
            except httpx.TimeoutException:
                raise self.timed_out() from None
            except httpx.TransportError as exc:
                raise self.fail(f"network error talking to {host}:{port}: {_describe(exc)}") from None
        raise self.fail(
            f"could not connect to {host}:{port}: {_describe(last_error)}"
        ) from None

    def finish(self, url: httpx.URL, response: httpx.Response) -> FetchResult:
        base_url = scrub_url(str(url))
        if response.status_code == 304:
            return FetchResult(
                body=None,
                base_url=base_url,
                validators=Validators(
                    etag=response.headers.get("etag") or self.validators.etag,
                    last_modified=response.headers.get("last-modified")
                    or self.validators.last_modified,
                ),
                status=304,
            )
        if not 200 <= response.status_code < 300:
            phrase = f" {response.reason_phrase}" if response.reason_phrase else ""
            raise self.fail(f"HTTP {response.status_code}{phrase}")
        body = self.read_body(response)
        return FetchResult(
            body=body,
            base_url=base_url,
            # A full answer replaces the validators: old ones describe an older body.
            validators=Validators(
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
            ),
            status=response.status_code,
        )

    def read_body(self, response: httpx.Response) -> bytes:
        limit = self.config.max_bytes
        too_large = f"response larger than {limit} bytes (ingest.max_bytes)"
        declared = response.headers.get("content-length", "").strip()
        # Content-Length counts encoded bytes, never more than the decoded ones.
        if declared.isdigit() and int(declared) > limit:
            raise self.fail(f"{too_large}: Content-Length is {declared}")
        try:
            decoder = Decoder.for_header(response.headers.get("content-encoding", ""))
        except UnsupportedEncoding as exc:
            raise self.fail(str(exc)) from None
        if decoder.encoded:
            too_large += " once decoded"
        body = io.BytesIO()

        def keep(chunks) -> None:  # noqa: ANN001
            # Each chunk is at most decoding.STEP bytes: counted before it is kept.
            for chunk in chunks:
                if body.tell() + len(chunk) > limit:
                    raise self.fail(too_large)
                body.write(chunk)

        try:
            # The raw (still encoded) stream: httpx would inflate a whole read at once.
            for raw in response.iter_raw():
                keep(decoder.feed(raw))
                self.remaining()
            keep(decoder.finish())
        except httpx.TimeoutException:
            raise self.timed_out() from None
        except httpx.TransportError as exc:
            raise self.fail(f"network error reading the response: {_describe(exc)}") from None
        except DecodeError as exc:
            raise self.fail(str(exc)) from None
        # BytesIO hands over its buffer without a copy: no second body-sized allocation.
        return body.getvalue()


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "no address to connect to"
    text = str(exc) or type(exc).__name__
    return scrub_url(text) if "://" in text else text


def fetch(
    location: str, *, config: IngestConfig, validators: Validators | None = None
) -> FetchResult:
    """Read a feed from a file path, a file:// URL or an http(s) URL.

    For http(s): a conditional GET with `validators` (a 304 gives `body=None`), the
    address guard, the redirect, size and time limits of `config` (see the module
    docstring). For files: the bytes, with an empty `base_url` so relative links
    resolve against the site. Raises distributor.errors.FeedError with the reason when
    the feed cannot be read; messages never carry the URL's user:password.
    """
    validators = validators or Validators()
    scheme = urlsplit(location).scheme.lower() if "://" in location else ""
    if not scheme or scheme == "file" or location.lower().startswith("file:"):
        return _read_file(location, config)
    fetcher = _Fetcher(location, config, validators)
    if scheme not in _NETWORK_SCHEMES:
        raise fetcher.fail(f"unsupported scheme {scheme!r}: use http, https or a file path")
    return fetcher.run(location)
