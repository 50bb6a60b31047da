"""Chaos benchmark: the chaos suite's scenario (tests/chaos) at full size, 2 000 elements.

Real processes on a temporary Postgres of their own: 30 % 503s and lost answers from both
platforms, the WM SIGKILLed right after a big push answered, a Postgres restart, a BE
SIGKILLed mid-delivery, the WM SIGKILLed mid-push. Prints
lost / duplicated / unlinked / out-of-order / Error counts (all must be 0) and the duration;
stops everything it started.

    .venv/bin/python -m bench.chaos --elements 2000
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from tests.chaos.support import chaos_system, run_scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--elements", type=int, default=2000)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="chaos-bench-") as data_dir,
        chaos_system(Path(data_dir)) as system,
    ):
        now = datetime.now(UTC).replace(microsecond=0)
        tally = run_scenario(system, elements=args.elements, now=now)
    print(tally.summary())
    raise SystemExit(0 if tally.clean else 1)


if __name__ == "__main__":
    main()
