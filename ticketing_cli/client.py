"""Small synchronous HTTP clients for the CLI, the benchmarks and the end-to-end tests.

They speak the services' public REST APIs only (never their databases), so they show how
an operator or an integrator uses the system.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

JSON_TYPE = "application/json"
CSV_TYPE = "text/csv"


class ApiError(RuntimeError):
    """A non-2xx answer, with the service's own error message."""

    def __init__(self, response: httpx.Response) -> None:
        try:
            error = response.json().get("error", {})
            message = error.get("message") or response.text
        except ValueError:
            message = response.text
        super().__init__(
            f"{response.request.method} {response.request.url.path} → "
            f"{response.status_code}: {message}"
        )
        self.status_code = response.status_code


def _checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise ApiError(response)
    return response.json() if response.content else None


def _chunks(
    payload: bytes, on_progress: Callable[[int], None], size: int = 1 << 20
) -> Iterator[bytes]:
    for start in range(0, len(payload), size):
        chunk = payload[start : start + size]
        on_progress(len(chunk))
        yield chunk


@dataclass
class WMClient:
    url: str
    admin_token: str
    ingest_token: str | None = None
    timeout: float = 120.0

    def _client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
            timeout=self.timeout,
        )

    def push(
        self,
        kind: str,
        payload: bytes,
        *,
        content_type: str = JSON_TYPE,
        params: dict[str, str] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        content: bytes | Iterator[bytes] = payload
        if on_progress is not None:
            content = _chunks(payload, on_progress)
        with self._client(self.ingest_token) as client:
            return _checked(
                client.post(
                    f"/api/v1/aggregations/{kind}",
                    content=content,
                    params=params,
                    headers={"Content-Type": content_type, "Content-Length": str(len(payload))},
                )
            )

    def put_topology(self, elements: list[dict[str, Any]]) -> dict[str, Any]:
        with self._client() as client:
            return _checked(client.put("/api/v1/topology", json={"elements": elements}))

    def backends(self) -> list[dict[str, Any]]:
        with self._client() as client:
            body = _checked(client.get("/api/v1/backends"))
        return body["backends"] if isinstance(body, dict) else body

    def get(self, path: str, **params: Any) -> Any:
        with self._client() as client:
            return _checked(client.get(path, params=params))

    def send(self, method: str, path: str, **kwargs: Any) -> Any:
        """Any other admin call (kwargs as httpx takes them: json, content, params, headers)."""
        with self._client() as client:
            return _checked(client.request(method, path, **kwargs))


@dataclass
class BEClient:
    url: str
    admin_token: str
    timeout: float = 30.0

    def get(self, path: str, **params: Any) -> Any:
        with httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=self.timeout,
        ) as client:
            return _checked(client.get(path, params=params))


@dataclass
class EmulatorClient:
    url: str
    timeout: float = 30.0

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        with httpx.Client(base_url=self.url, timeout=self.timeout) as client:
            return _checked(client.request(method, path, **kwargs))

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_emulator/stats")

    def records(self, obj: str) -> list[dict[str, Any]]:
        body = self._call("GET", f"/_emulator/records/{obj}")
        return body["records"] if isinstance(body, dict) else body

    def set_faults(self, **faults: Any) -> None:
        self._call("POST", "/_emulator/faults", json=faults)

    def clear_faults(self) -> None:
        self._call("DELETE", "/_emulator/faults")
