"""A fourth kind declared by its KindSpec alone goes through the real WM like the other three."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from tests.wm.conftest import ADMIN
from tests.wm.support import T0, entry, push, push_body, sample, ticket_detail, tickets
from ticketing_cli import sample_network
from ticketing_common.contract import SCHEMA_VERSION, TicketDocument
from wm_service import kinds
from wm_service.kinds import KindSpec, Levels, SampleProfile

DS_SNR = KindSpec(
    name="ds-snr",
    unit="dB",
    lower_is_worse=True,
    thresholds=Levels(critical=33, major=35, minor=37),
    value_range=(0.0, 60.0),
    category="SNR",
    label="SNR downstream",
    sample=SampleProfile("ds-service-group", healthy=(38.0, 42.0), troubled=(28.0, 32.5)),
)
MIN = timedelta(minutes=1)
LOC = {"market": "Monterrey", "hub": "MTY01", "ccap": "CCAP02", "service_group": "N0423"}


@pytest.fixture
def ds_snr() -> Iterator[KindSpec]:
    """The ds-snr kind, declared for one test and forgotten after it."""
    spec = kinds.register(DS_SNR)
    yield spec
    kinds.unregister(spec.name)


async def test_a_fourth_kind_opens_a_ticket(ds_snr: KindSpec, client: httpx.AsyncClient) -> None:
    """A critical ds-snr entry opens a ticket with its category, unit, threshold and priority."""
    body = push_body(entry("MTY01-CCAP02:N0423-DS", sample(30.0, T0 - MIN), **LOC, subscribers=80))
    response = await push(client, body, kind="ds-snr")
    assert response.status_code == 200, response.text
    assert response.json()["kind"] == "ds-snr"
    assert response.json()["tickets"]["opened"] == 1
    [ticket] = await tickets(client, kind="ds-snr")
    assert (ticket["category"], ticket["priority"]) == ("SNR", "P2")
    assert ticket["dedup_key"] == "ds-snr:MTY01-CCAP02:N0423-DS"
    document = TicketDocument.model_validate((await ticket_detail(client, ticket["id"]))["ticket"])
    assert (document.schema_version, document.kind, document.reason) == (
        SCHEMA_VERSION,
        "ds-snr",
        "critical",
    )
    assert (document.unit, document.threshold, document.worst_value) == ("dB", 33, 30.0)
    assert document.title.startswith("SNR downstream crítica en MTY01-CCAP02:N0423-DS")


async def test_a_fourth_kind_has_no_borrowed_p1_rule(
    ds_snr: KindSpec, client: httpx.AsyncClient
) -> None:
    """Without its own P1 value, a very low ds-snr is not P1 by the upstream SNR rule."""
    body = push_body(entry("E1", sample(5.0, T0 - MIN), **LOC, subscribers=3))
    await push(client, body, kind="ds-snr")
    [ticket] = await tickets(client, kind="ds-snr")
    assert ticket["priority"] == "P4"


async def test_a_fourth_kind_has_default_and_validated_thresholds(
    ds_snr: KindSpec, client: httpx.AsyncClient
) -> None:
    """Settings show its default thresholds and refuse them out of its order."""
    body = (await client.get("/api/v1/settings", headers=ADMIN)).json()
    assert body["thresholds"]["ds-snr"] == {"critical": 33, "major": 35, "minor": 37}
    response = await client.patch(
        "/api/v1/settings", json={"thresholds": {"ds-snr": {"critical": 36}}}, headers=ADMIN
    )
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == ["thresholds.ds-snr"]


async def test_an_undeclared_kind_is_refused_naming_the_field(client: httpx.AsyncClient) -> None:
    """Without its declaration, ds-snr is a 422 on path.kind that lists the known kinds."""
    response = await push(client, push_body(entry("E1", sample(30.0, T0 - MIN))), kind="ds-snr")
    assert response.status_code == 422
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == "path.kind"
    assert "snr-upstream" in detail["message"]


def test_the_sample_network_pushes_a_fourth_kind(ds_snr: KindSpec) -> None:
    """The sample network builds a ds-snr aggregation from the profile in its declaration."""
    network = sample_network.build_network(service_groups=3)
    body = sample_network.aggregation(network, "ds-snr")
    assert [e["entity_id"].rsplit("-", 1)[1] for e in body["entries"]] == ["DS"] * 3


async def test_a_kind_no_longer_declared_keeps_its_history_readable(
    client: httpx.AsyncClient,
) -> None:
    """Tickets, pushes and settings of a removed kind are still read, never a 500."""
    kinds.register(DS_SNR)
    try:
        await push(client, push_body(entry("E1", sample(30.0, T0 - MIN))), kind="ds-snr")
        patch = {"thresholds": {"ds-snr": {"critical": 32}}}
        assert (await client.patch("/api/v1/settings", json=patch, headers=ADMIN)).is_success
    finally:
        kinds.unregister(DS_SNR.name)
    [ticket] = await tickets(client)
    assert (ticket["kind"], ticket["category"]) == ("ds-snr", "SNR")
    pushes = (await client.get("/api/v1/aggregations", headers=ADMIN)).json()["items"]
    assert [p["kind"] for p in pushes] == ["ds-snr"]
    settings = (await client.get("/api/v1/settings", headers=ADMIN)).json()
    assert "ds-snr" not in settings["thresholds"]
