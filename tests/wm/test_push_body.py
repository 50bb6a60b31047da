"""A push body is given back as it is decoded: never a byte that is still to be read."""

from __future__ import annotations

import json
import mmap
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.wm.conftest import INGEST
from tests.wm.support import T0, entry, push_body, sample
from wm_service.deps import PushBody
from wm_service.services import push_decode

MIN = timedelta(minutes=1)


def _entries(count: int) -> list[dict[str, Any]]:
    return [
        entry(f"E{i}", sample(20.0 + i % 7, T0 - MIN), market=f"M{i % 3}", subscribers=i)
        for i in range(count)
    ]


def _decode(body: push_decode.Body, release: Any = None) -> push_decode.Push:
    return push_decode.decode_json(body, now=T0, skew=timedelta(minutes=5), release=release)


def test_what_the_decoder_releases_is_never_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Released after every entry and overwritten with zeros at once (what a given-back page
    reads as), a push packed as tightly as JSON allows (no spaces, its entries first)
    decodes to the same push as when nothing is released."""
    monkeypatch.setattr(push_decode, "RELEASE_EVERY_BYTES", 1)
    document = push_body(*_entries(40))
    packed = {"entries": document.pop("entries"), **document}
    text = json.dumps(packed, separators=(",", ":")).encode()
    body = bytearray(text)
    offsets: list[int] = []

    def release(offset: int) -> None:
        offsets.append(offset)
        body[:offset] = bytes(offset)

    assert _decode(body, release) == _decode(text)
    # Each release stops at or before the first byte of the next entry (then the end).
    starts = [text.index(b'{"entity_id":"E%d"' % i) for i in range(1, 40)] + [len(text)]
    assert len(offsets) == 40
    assert all(offset <= start for offset, start in zip(offsets, starts, strict=True))
    assert body.count(0) == offsets[-1] > len(text) // 2


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * mmap.PAGESIZE


def test_a_push_body_gives_back_the_pages_before_an_offset() -> None:
    """Its pages count once written; those before the offset are given back, the rest
    (the page the offset falls in included) keep their bytes."""
    chunk = bytes(range(256)) * 4096  # 1 MiB
    body = PushBody(declared=64 * len(chunk))
    for _ in range(64):
        body.append(chunk)
    body.finish()
    data = body.data
    assert len(data) == 64 * len(chunk)
    written = _resident_bytes()
    cut = 48 * len(chunk) + 100
    body.release_before(cut)
    assert written - _resident_bytes() >= 40 * len(chunk)
    kept_from = cut - cut % mmap.PAGESIZE
    assert data[kept_from : kept_from + 256] == chunk[kept_from % len(chunk) :][:256]
    assert data[-len(chunk) :] == chunk


def test_a_push_body_longer_than_declared_undeclared_or_empty() -> None:
    """More bytes than declared grow the map, an undeclared length is cut to what came, no
    bytes at all read as empty."""
    body = PushBody(declared=10)
    body.append(b"x" * 5000)
    body.append(b"y")
    body.finish()
    assert bytes(body.data) == b"x" * 5000 + b"y"
    chunked = PushBody(declared=None)
    chunked.append(b"z" * 700)
    chunked.finish()
    assert bytes(chunked.data) == b"z" * 700
    empty = PushBody(declared=100)
    empty.finish()
    assert empty.data == b""


class _WithoutMremap(mmap.mmap):
    """A map that cannot be resized in place, as on macOS."""

    def resize(self, newsize: int) -> None:
        raise SystemError("mmap: resizing not available--no mremap()")


def test_a_push_body_grows_and_is_cut_without_mremap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where maps cannot be resized in place, a body is moved to a new map, bytes intact."""
    monkeypatch.setattr(mmap, "mmap", _WithoutMremap)
    monkeypatch.setattr(PushBody, "UNDECLARED_START", 4096)
    body = PushBody(declared=None)
    content = bytes(range(256)) * 40  # 10 KiB: grows twice past 4 KiB
    for start in range(0, len(content), 1000):
        body.append(content[start : start + 1000])
    body.finish()
    assert isinstance(body.data, _WithoutMremap)
    assert bytes(body.data) == content


async def test_a_push_of_several_mib_is_decoded_whole_through_the_route(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through HTTP, a push large enough to be given back page by page while it is decoded
    is given back so, and applied whole: every entry counted, every critical one a ticket."""
    released: list[int] = []
    release_before = PushBody.release_before

    def counted(body: PushBody, offset: int) -> None:
        released.append(offset)
        release_before(body, offset)

    monkeypatch.setattr(PushBody, "release_before", counted)
    entries = [
        entry(f"BIG{i:05d}", sample(20.0 if i % 100 == 0 else 35.0, T0 - MIN), hub="H" * 150)
        for i in range(12_000)
    ]
    text = json.dumps(push_body(*entries)).encode()
    assert len(text) > 2 * push_decode.RELEASE_EVERY_BYTES
    response = await client.post(
        "/api/v1/aggregations/snr-upstream",
        content=text,
        headers={**INGEST, "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["entries"] == 12_000
    assert result["critical_entries"] == 120
    assert len(released) >= 2
