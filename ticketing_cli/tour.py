"""What `ticketing up` does once the system runs: load the sample network, push it, watch the
tickets reach both platforms, and print the summary, URLs and development tokens.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ticketing_cli import sample_network
from ticketing_cli.client import BEClient, EmulatorClient, WMClient
from ticketing_cli.stack import Stack

FINAL_STATUSES = ("Completed", "Error")


def clients(stack: Stack) -> tuple[WMClient, list[tuple[str, BEClient]], EmulatorClient]:
    layout, tokens = stack.layout, stack.tokens
    wm = WMClient(layout.wm_url, tokens.wm_admin, tokens.wm_ingest)
    bes = [
        (f"be{index + 1}", BEClient(layout.be_url(port), tokens.be_admin))
        for index, port in enumerate(layout.be_ports)
    ]
    return wm, bes, EmulatorClient(layout.emulator_url)


def be_status_counts(be: BEClient) -> Counter[str]:
    """Ticket revisions per status on one BE (Received, Completed, Error, ...)."""
    body = be.get("/api/v1/tickets", limit=1)
    return Counter({status: int(count) for status, count in body["counts"].items()})


def wait_for_backends(wm: WMClient, expected: int, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for backend in wm.backends() if backend.get("available")) >= expected:
            return
        time.sleep(0.5)
    raise RuntimeError(f"fewer than {expected} BEs registered on the WM within {timeout:.0f} s")


def push_sample(wm: WMClient, console: Console, *, service_groups: int) -> list[dict[str, Any]]:
    network = sample_network.build_network(service_groups=service_groups)
    topology = wm.put_topology(sample_network.topology_elements(network))
    console.print(f"Topology inventory: {topology['upserted']} elements")
    results = []
    for kind in sample_network.KINDS:
        body = sample_network.aggregation(network, kind)
        results.append(wm.push(kind, json.dumps(body).encode()))
    return results


def finished_revisions(bes: list[tuple[str, BEClient]]) -> int:
    """Revisions already Completed or in Error on the BEs (from earlier runs on this data)."""
    return sum(
        sum(counts[s] for s in FINAL_STATUSES) for counts in (be_status_counts(be) for _, be in bes)
    )


def warn_if_paused(bes: list[tuple[str, BEClient]], console: Console) -> None:
    """Processing off is kept across restarts; say so rather than show a stuck progress bar."""
    for name, be in bes:
        if not be.get("/api/v1/settings")["processing_enabled"]:
            console.print(
                f"[yellow]{name} has ticket processing switched off (a run-time setting kept "
                f"in its database): its tickets wait as Received. Switch it on with PATCH "
                f'{be.url}/api/v1/settings {{"processing_enabled": true}}.[/yellow]'
            )


def follow_tickets(
    bes: list[tuple[str, BEClient]],
    expected: int,
    console: Console,
    *,
    already_finished: int,
    stopping: threading.Event,
    timeout: float = 300,
) -> dict[str, Counter[str]]:
    """Show progress until `expected` more revisions are final on the BEs (or timeout)."""
    per_be: dict[str, Counter[str]] = {}
    with Progress(
        TextColumn("[bold]tickets on the platforms"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("deliver", total=expected)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stopping.is_set():
            per_be = {name: be_status_counts(be) for name, be in bes}
            done = sum(sum(c[s] for s in FINAL_STATUSES) for c in per_be.values())
            done -= already_finished
            progress.update(task, completed=min(done, expected))
            if done >= expected:
                break
            stopping.wait(0.5)
    return per_be


def summary_tables(
    pushes: list[dict[str, Any]], per_be: dict[str, Counter[str]], emulator_stats: dict[str, Any]
) -> list[Table]:
    kinds = Table(title="Per aggregation")
    for column in ("kind", "entries", "critical", "opened", "updated", "cleared", "unchanged"):
        kinds.add_column(column, justify="right" if column != "kind" else "left")
    for push in pushes:
        t = push["tickets"]
        kinds.add_row(
            push["kind"],
            str(push["entries"]),
            str(push["critical_entries"]),
            str(t["opened"]),
            str(t["updated"]),
            str(t["cleared"]),
            str(t["unchanged"]),
        )
    backends = Table(title="Per BE")
    for column in ("BE", "Completed", "Error", "in progress"):
        backends.add_column(column, justify="right" if column != "BE" else "left")
    for name, counts in per_be.items():
        pending = sum(v for k, v in counts.items() if k not in FINAL_STATUSES)
        backends.add_row(name, str(counts["Completed"]), str(counts["Error"]), str(pending))
    platforms = Table(title="Per platform")
    platforms.add_column("platform")
    platforms.add_column("object")
    platforms.add_column("records", justify="right")
    records = emulator_stats.get("records", {})
    platforms.add_row("Cherwell", "incidents", str(records.get("incident", 0)))
    platforms.add_row("Cherwell", "journal notes", str(records.get("journal", 0)))
    platforms.add_row("SFyC", "work orders", str(records.get("workorder", 0)))
    return [kinds, backends, platforms]


def access_table(stack: Stack) -> Table:
    layout, tokens = stack.layout, stack.tokens
    table = Table(title="Running (Ctrl-C stops everything)")
    table.add_column("service")
    table.add_column("URL")
    table.add_column("development token(s)")
    table.add_row(
        "NOC console", f"{layout.wm_url}/console", f"sign in with admin: {tokens.wm_admin}"
    )
    table.add_row(
        "WM",
        f"{layout.wm_url}/docs",
        f"admin: {tokens.wm_admin}\ningest: {tokens.wm_ingest}\nmetrics: {tokens.metrics}",
    )
    for index, port in enumerate(layout.be_ports):
        table.add_row(
            f"BE be{index + 1}",
            f"{layout.be_url(port)}/docs",
            f"admin: {tokens.be_admin}\nintake: {tokens.be_intake}",
        )
    table.add_row("Emulators", f"{layout.emulator_url}/_emulator/stats", "(none)")
    table.add_row("Logs", str(stack.data_dir / "logs"), "")
    return table
