"""httpx's client API on aiohttp's connections: the BE's calls at under half the CPU.

httpx's own transport (httpcore on anyio: a cancel scope per read and write, its pool's
locks) cost ~700 µs of CPU per call of 30 KB out and 60 KB back on this machine; the same
`httpx.AsyncClient` on this transport ~320 µs (aiohttp alone ~140 µs). A BE makes four
such calls per batch and step list, and they were a quarter of its CPU under load
(README, "Where the time went"). Everything above the transport is httpx's as before:
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

# Set by aiohttp from the URL and the body, or meaningless across a hop.
_HOP_HEADERS = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection"})


def async_client(
    *, timeout: httpx.Timeout, limits: httpx.Limits, trust_env: bool = True
) -> httpx.AsyncClient:
    """An httpx client on this transport, or on httpx's own when a proxy is configured."""
    proxied = trust_env and bool(urllib.request.getproxies())
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
        url = str(request.url)
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
            # The pool wait and the connect share aiohttp's `connect` bound.
            raise httpx.ConnectTimeout(str(exc) or "timed out", request=request) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _timeout(bounds: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
    """httpx's four bounds in aiohttp's terms (aiohttp has no write bound; the callers also
    bound each call as a whole)."""
    connect, pool = bounds.get("connect"), bounds.get("pool")
    return aiohttp.ClientTimeout(
        total=None,
        connect=None if connect is None or pool is None else connect + pool,
        sock_connect=connect,
        sock_read=bounds.get("read"),
    )


def _httpx_error(exc: aiohttp.ClientError, request: httpx.Request) -> httpx.TransportError:
    """The httpx error the same failure raises on httpx's own transport."""
    message = str(exc) or type(exc).__name__
    error: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        error = httpx.ConnectTimeout
    elif isinstance(exc, aiohttp.ServerTimeoutError):
        error = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ClientConnectorError):
        error = httpx.ConnectError
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        error = httpx.RemoteProtocolError
    else:
        error = httpx.ReadError
    return error(message, request=request)
