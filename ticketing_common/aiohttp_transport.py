"""httpx's client API on aiohttp's connections: the BE's calls at under half the CPU.

httpx's own transport (httpcore on anyio: a cancel scope per read and write, its pool's
locks) cost ~700 µs of CPU per call of 30 KB out and 60 KB back on this machine; the same
`httpx.AsyncClient` on this transport ~320 µs (aiohttp alone ~140 µs). A BE makes four
such calls per batch and step list, and they were a quarter of its CPU under load
(docs/performance.md, item 28). Everything above the transport is httpx's as before:
timeouts, headers, content decoding, and the errors the callers catch (`httpx.HTTPError`).
A process whose environment names a proxy keeps httpx's own transport and its handling of
HTTP(S)_PROXY/NO_PROXY, unchanged.
"""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import Mapping

import aiohttp
import httpx
import yarl

# Set by aiohttp from the URL and the body, or meaningless across a hop.
_HOP_HEADERS = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection"})


def async_client(
    *, timeout: httpx.Timeout, limits: httpx.Limits, trust_env: bool = True
) -> httpx.AsyncClient:
    """An httpx client on this transport, or on httpx's own when a proxy is configured."""
    # NO_PROXY alone names no proxy.
    proxied = trust_env and any(scheme != "no" for scheme in urllib.request.getproxies())
    transport = None if proxied else AiohttpTransport(limits=limits, trust_env=trust_env)
    return httpx.AsyncClient(
        timeout=timeout, limits=limits, trust_env=trust_env, transport=transport
    )


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session per transport (made on first use, inside the running loop)."""

    def __init__(self, *, limits: httpx.Limits = httpx.Limits(), trust_env: bool = True) -> None:
        self._limits = limits
        self._trust_env = trust_env
        self._session: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            expiry = self._limits.keepalive_expiry
            connector = aiohttp.TCPConnector(
                limit=self._limits.max_connections or 0,
                keepalive_timeout=expiry if expiry is not None else 5.0,
            )
            # Bodies are handed to httpx as they came: it decodes them by Content-Encoding,
            # as with its own transport.
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies, if any
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    def _ssl_context(self) -> ssl.SSLContext:
        # httpx's own verification (certifi, or SSL_CERT_FILE/SSL_CERT_DIR when trusted),
        # built on the first https call: loading the CA bundle takes ~30 ms.
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context(trust_env=self._trust_env)
        return self._ssl

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # As httpx encoded it (a SOQL query stays byte for byte), without user:password:
        # httpx has made those an Authorization header already. (Only then copied: httpx
        # parses a URL again to copy it, ~0.3 ms for a query of 50 keys.)
        target = request.url
        if target.userinfo:
            target = target.copy_with(username=None, password=None)
        url = yarl.URL(str(target), encoded=True)
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers.raw
            if name.lower() not in _HOP_HEADERS
        ]
        body = await request.aread()
        try:
            async with self._client().request(
                request.method,
                url,
                data=body or None,
                headers=headers,
                timeout=_timeout(request.extensions.get("timeout") or {}),
                ssl=self._ssl_context() if request.url.scheme == "https" else True,
                allow_redirects=False,  # httpx follows them itself when asked
                compress=False,
            ) as answer:
                content = await answer.read()
                return httpx.Response(
                    answer.status, headers=list(answer.raw_headers), content=content
                )
        except aiohttp.ClientError as exc:
            raise _httpx_error(exc, request) from exc
        except TimeoutError as exc:
            # The whole-call backstop, or the pool wait and connect (one aiohttp bound).
            raise httpx.TimeoutException("timed out", request=request) from exc
        except (ValueError, OSError) as exc:
            # Whatever else aiohttp refuses or meets on the way: a transport failure, never
            # blamed on the ticket (no URL in the text: it may carry a query).
            raise httpx.TransportError(type(exc).__name__, request=request) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _timeout(bounds: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
    """httpx's four bounds in aiohttp's terms. aiohttp has no write bound (its read timer
    starts once the body is sent), so the call as a whole is bounded by the four together:
    a peer that stops reading cannot hold a heartbeat or a report forever."""
    phases = [bounds.get(name) for name in ("pool", "connect", "write", "read")]
    connect, pool = bounds.get("connect"), bounds.get("pool")
    return aiohttp.ClientTimeout(
        total=None if None in phases else sum(p for p in phases if p is not None),
        connect=None if connect is None or pool is None else connect + pool,
        sock_connect=connect,
        sock_read=bounds.get("read"),
    )


def _httpx_error(exc: aiohttp.ClientError, request: httpx.Request) -> httpx.TransportError:
    """The httpx error the same failure raises on httpx's own transport. Its text names the
    failure, never the URL (aiohttp's does, query string included; these texts are kept on
    attempt rows and logged)."""
    error: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        error, message = httpx.ConnectTimeout, "timed out connecting"
    elif isinstance(exc, aiohttp.ServerTimeoutError):
        error, message = httpx.ReadTimeout, "timed out waiting for the answer"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        error, message = (
            httpx.ConnectError,
            f"cannot connect: {exc.os_error.strerror or type(exc.os_error).__name__}",
        )
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        error, message = httpx.RemoteProtocolError, "server disconnected without an answer"
    elif isinstance(exc, aiohttp.ClientResponseError):
        error, message = httpx.RemoteProtocolError, f"invalid answer: {exc.message}"
    else:
        error, message = httpx.ReadError, type(exc).__name__
    return error(message, request=request)
