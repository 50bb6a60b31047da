"""What the benchmarks share: a sampler of the peak memory of the processes they start,
their CPU, and a throw-away Postgres."""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil

from ticketing_common import embedded_pg


class PeakMemory:
    """Samples the memory of a set of PIDs (with their children) in a thread.

    Proportional set size (PSS): Postgres backends share their buffers, and summing their
    RSS would count the shared memory once per backend.
    """

    def __init__(self, pids: dict[str, int], interval: float = 0.5) -> None:
        self.pids = pids
        self.peaks = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.interval = interval

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                try:
                    process = psutil.Process(pid)
                    rss = process.memory_full_info().pss + sum(
                        child.memory_full_info().pss for child in process.children(recursive=True)
                    )
                except psutil.Error:
                    continue
                self.peaks[name] = max(self.peaks[name], rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, of its live descendants, and of the children it has
    reaped (a Postgres postmaster's finished backends are counted there)."""
    process = psutil.Process(pid)
    times = process.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in process.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.Error:
            continue
        total += child_times.user + child_times.system
    return total


def backend_seconds(postmaster_pid: int) -> dict[tuple[int, float], tuple[str, float]]:
    """Each live client backend of a Postgres server, keyed by PID and start time (a PID
    can be reused): its database and its CPU seconds so far."""
    found: dict[tuple[int, float], tuple[str, float]] = {}
    for child in psutil.Process(postmaster_pid).children():
        try:
            database = database_of(" ".join(child.cmdline()))
            times = child.cpu_times()
            key = (child.pid, child.create_time())
        except psutil.Error:
            continue
        if database is not None:
            found[key] = (database, times.user + times.system)
    return found


def database_of(title: str) -> str | None:
    """The database of a client backend's process title ("postgres: <user> <database>
    <client> <state>"); None for the server's own processes, which name no client
    ("postgres: autovacuum worker wm", "postgres: checkpointer"). (Titles as this
    project's servers set them: no cluster_name, which would come first.)"""
    words = title.split()
    client = len(words) > 3 and ("(" in words[3] or words[3] == "[local]")
    return words[2] if client else None


class DatabaseCpu:
    """Postgres's CPU seconds between `__enter__` and `__exit__` per database, from its
    client backends alive at the end (the services hold their pooled connections for the
    whole run). The rest of the server's CPU, which `split` adds as "rest", is its own
    processes, autovacuum, and the backends that ended in between."""

    def __init__(self, postmaster_pid: int) -> None:
        self.postmaster_pid = postmaster_pid
        self._start: dict[tuple[int, float], tuple[str, float]] = {}
        self.seconds: dict[str, float] = {}

    def __enter__(self) -> DatabaseCpu:
        self._start = backend_seconds(self.postmaster_pid)
        return self

    def __exit__(self, *_: object) -> None:
        try:
            now = backend_seconds(self.postmaster_pid)
        except psutil.Error:
            return  # the server is gone: nothing to split (the caller's error tells why)
        self.seconds = {}
        for key, (database, spent) in now.items():
            before = self._start.get(key, (database, 0.0))[1]
            self.seconds[database] = self.seconds.get(database, 0.0) + spent - before

    def split(self, total: float) -> dict[str, float]:
        """Per database, largest first, then "rest": what `total` (the server's CPU over
        the same span, bench.support.CpuMeter) leaves. A negative rest would mean the two
        were not measured over the same span: printed as it is, not hidden."""
        ranked = dict(sorted(self.seconds.items(), key=lambda item: -item[1]))
        return ranked | {"rest": total - sum(ranked.values())}


_MACHINE_TIME_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


class CpuMeter:
    """CPU seconds each named process spent between `__enter__` and `__exit__`, and the
    machine's share of that time busy, and stolen by the hypervisor for other guests.

    Stolen time is why the same run's figures move by a third within an hour on this VM:
    printed next to a run, it tells a slow hour from a slow change."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.seconds: dict[str, float] = {}
        self.busy_share = 0.0
        self.stolen_share = 0.0
        self._start: dict[str, float] = {}
        self._machine_start = psutil.cpu_times()

    def __enter__(self) -> CpuMeter:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._machine_start = psutil.cpu_times()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = {
            name: cpu_seconds(pid) - self._start[name] for name, pid in self.pids.items()
        }
        spent = {
            field: getattr(psutil.cpu_times(), field, 0.0)
            - getattr(self._machine_start, field, 0.0)
            for field in _MACHINE_TIME_FIELDS
        }
        # (Guest time is already inside user and nice, so it is not among the fields.)
        total = sum(spent.values())
        if total > 0:
            idle = spent["idle"] + spent["iowait"]
            self.busy_share = max(0.0, (total - idle - spent["steal"]) / total)
            self.stolen_share = max(0.0, spent["steal"] / total)

    def machine(self) -> str:
        return (
            f"cores busy {100 * self.busy_share:.0f} %, "
            f"stolen by the host {100 * self.stolen_share:.0f} %"
        )


@contextlib.contextmanager
def scratch_postgres(prefix: str) -> Iterator[embedded_pg.EmbeddedPostgres]:
    """An embedded Postgres in a temporary folder, without fsync (its data is thrown away),
    stopped and deleted at the end."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        server = embedded_pg.ensure_running(Path(tmp), durable=False)
        try:
            yield server
        finally:
            embedded_pg.stop(server)
