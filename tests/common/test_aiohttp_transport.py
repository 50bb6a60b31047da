"""The BE's HTTP transport (httpx's API on aiohttp's connections) against raw servers on
loopback: what a call sends and gets back, and that every way a call fails is the httpx error
the callers already handle (the platform adapters decide retries and ambiguity from them)."""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import trustme

from ticketing_common.aiohttp_transport import AiohttpTransport, async_client

Handler = Callable[[bytes, bytes, asyncio.StreamWriter], Awaitable[None]]

TIMEOUT = httpx.Timeout(2.0, connect=1.0)


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


class Server:
    """One raw HTTP/1.1 server on a free port; `handler` answers each request."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.requests: list[tuple[bytes, bytes]] = []
        self.connections = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head, body = await _read_request(reader)
                self.requests.append((head, body))
                await self.handler(head, body, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        port = self._server.sockets[0].getsockname()[1]
        scheme = "https" if self.ssl_context else "http"
        host = "localhost" if self.ssl_context else "127.0.0.1"
        return f"{scheme}://{host}:{port}"

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()


def _answer(status: int, body: bytes, *headers: tuple[bytes, bytes]) -> bytes:
    lines = [b"HTTP/1.1 %d X" % status, b"Content-Length: %d" % len(body)]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def _ok(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
    answer = gzip.compress(b'{"echo": "' + body + b'"}')
    writer.write(
        _answer(
            201,
            answer,
            (b"Content-Type", b"application/json"),
            (b"Content-Encoding", b"gzip"),
            (b"Retry-After", b"7"),
        )
    )
    await writer.drain()


async def _silent(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(5)  # never answers within any timeout these tests set


async def _refused_port() -> int:
    """A loopback port nothing listens on (it did a moment ago)."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=TIMEOUT) as http:
        yield http


async def test_a_call_sends_the_request_and_returns_the_decoded_answer(
    client: httpx.AsyncClient,
) -> None:
    server = Server(_ok)
    async with server as url:
        first = await client.post(
            url + "/api/V1/save?x=1&y=a%20b",
            content=b"hello",
            headers={"Authorization": "Bearer t0k", "Content-Type": "application/json"},
        )
        second = await client.get(url + "/again")
    assert first.status_code == 201
    assert first.json() == {"echo": "hello"}  # gunzipped by httpx, as on its own transport
    assert first.headers["retry-after"] == "7"
    head, body = server.requests[0]
    assert head.startswith(b"POST /api/V1/save?x=1&y=a%20b HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer t0k\r\n" in head
    assert b"\r\nContent-Type: application/json\r\n" in head
    assert head.lower().count(b"\r\ncontent-length:") == 1
    assert head.lower().count(b"\r\nhost:") == 1
    assert body == b"hello"
    assert second.status_code == 201
    assert server.requests[1][0].startswith(b"GET /again HTTP/1.1\r\n")
    assert server.connections == 1, "the second call reuses the kept-alive connection"


async def test_nothing_listening_is_a_connect_error(client: httpx.AsyncClient) -> None:
    with pytest.raises(httpx.ConnectError):
        await client.get(f"http://127.0.0.1:{await _refused_port()}/")


async def test_no_answer_within_the_read_timeout_is_a_read_timeout() -> None:
    transport = AiohttpTransport()
    async with (
        Server(_silent) as url,
        httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(0.3)) as http,
    ):
        with pytest.raises(httpx.ReadTimeout):
            await http.post(url + "/", content=b"{}")


async def test_a_connection_closed_before_the_answer_is_a_protocol_error(
    client: httpx.AsyncClient,
) -> None:
    async def hang_up(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with Server(hang_up) as url:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(url + "/", content=b"{}")


async def test_an_answer_cut_short_is_a_transport_error(client: httpx.AsyncClient) -> None:
    async def cut(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(_answer(200, b"0123456789")[:-4])
        await writer.drain()
        writer.close()

    async with Server(cut) as url:
        with pytest.raises(httpx.TransportError):
            await client.get(url + "/")


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def _tls_server_context(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(context)
    return context


async def test_https_verifies_the_certificate(
    authority: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A certificate no trusted authority signed is refused; trusting its authority the way
    httpx does (SSL_CERT_FILE) lets the same call through."""
    async with Server(_ok, _tls_server_context(authority)) as url:
        async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=TIMEOUT) as http:
            with pytest.raises(httpx.ConnectError):
                await http.post(url + "/", content=b"x")
        bundle = tmp_path / "ca.pem"
        authority.cert_pem.write_to_path(str(bundle))
        monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
        async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=TIMEOUT) as http:
            answer = await http.post(url + "/", content=b"x")
    assert answer.json() == {"echo": "x"}


def _transport_of(http: httpx.AsyncClient) -> httpx.AsyncBaseTransport:
    # Which transport the factory chose is the point of these tests.
    return http._transport


def test_a_configured_proxy_keeps_httpx_own_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    for scheme in ("http", "https", "all", "no"):
        monkeypatch.delenv(f"{scheme}_proxy", raising=False)
        monkeypatch.delenv(f"{scheme.upper()}_PROXY", raising=False)
    limits = httpx.Limits(max_connections=4)
    direct = async_client(timeout=TIMEOUT, limits=limits)
    assert isinstance(_transport_of(direct), AiohttpTransport)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")  # names no proxy
    assert isinstance(_transport_of(async_client(timeout=TIMEOUT, limits=limits)), AiohttpTransport)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    proxied = async_client(timeout=TIMEOUT, limits=limits)
    assert isinstance(_transport_of(proxied), httpx.AsyncHTTPTransport)
    bypassed = async_client(timeout=TIMEOUT, limits=limits, trust_env=False)
    assert isinstance(_transport_of(bypassed), AiohttpTransport)


async def test_failures_never_quote_the_url(client: httpx.AsyncClient) -> None:
    """The text of a failed call is kept on attempt rows and logged: no query string in it."""

    failures: list[httpx.HTTPError] = []
    with pytest.raises(httpx.ConnectError) as refusal:
        await client.get(f"http://127.0.0.1:{await _refused_port()}/q?api_key=SECRET1")
    failures.append(refusal.value)
    async with (
        Server(_silent) as url,
        httpx.AsyncClient(transport=AiohttpTransport(), timeout=httpx.Timeout(0.3)) as http,
    ):
        with pytest.raises(httpx.ReadTimeout) as timeout:
            await http.get(url + "/q?api_key=SECRET2")
    failures.append(timeout.value)
    for failure in failures:
        assert "SECRET" not in str(failure) and "api_key" not in str(failure), failure


async def test_a_peer_that_stops_reading_cannot_hold_a_call_forever() -> None:
    """aiohttp has no write bound: the call as a whole is bounded by httpx's four bounds."""
    accepted: list[asyncio.StreamWriter] = []

    async def never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # holds the connection open, reads nothing

    server = await asyncio.start_server(never_reads, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(
            transport=AiohttpTransport(), timeout=httpx.Timeout(0.3)
        ) as http:
            with pytest.raises(httpx.TimeoutException):
                async with asyncio.timeout(10):  # the test's own bound, far above 4 x 0.3 s
                    await http.post(f"http://127.0.0.1:{port}/", content=b"x" * 64_000_000)
    finally:
        for writer in accepted:
            writer.close()
        server.close()


async def test_credentials_in_the_url_travel_as_httpx_puts_them(
    client: httpx.AsyncClient,
) -> None:
    server = Server(_ok)
    async with server as url:
        answer = await client.get(url.replace("http://", "http://noc:pa55@") + "/x")
    assert answer.status_code == 201
    head = server.requests[0][0]
    assert b"\r\nAuthorization: Basic bm9jOnBhNTU=\r\n" in head  # base64("noc:pa55")
    assert b"noc:pa55" not in head
