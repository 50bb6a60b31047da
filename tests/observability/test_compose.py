"""compose.yaml without a Docker engine: every variable it requires is in the example .env,
every file it mounts exists, and the observability profile is wired to the provisioned files."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = (ROOT / "compose.yaml").read_text()


def test_every_required_variable_is_in_the_example_env() -> None:
    """`${X:?…}` variables all have a line in deploy/example.env, so a copy of it starts."""
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE))
    example = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / "deploy/example.env").read_text(), re.M))
    assert required and required - example == set()


def test_every_mounted_file_exists() -> None:
    """Bind mounts (./…) point at files and folders of the repository."""
    services = yaml.safe_load(COMPOSE)["services"]
    mounts = [
        volume.split(":")[0]
        for service in services.values()
        for volume in service.get("volumes", [])
        if volume.startswith("./")
    ]
    assert mounts and [m for m in mounts if not (ROOT / m).exists()] == []


def test_observability_profile_runs_prometheus_and_grafana() -> None:
    """Both are in the profile only, so a plain `docker compose up` starts without them."""
    services = yaml.safe_load(COMPOSE)["services"]
    profiled = {name for name, s in services.items() if "observability" in s.get("profiles", [])}
    assert profiled == {"prometheus", "grafana"}
    assert all("profiles" not in s for n, s in services.items() if n not in profiled)
