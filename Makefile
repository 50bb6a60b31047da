# Two commands do all the set-up on a fresh machine: `make up` and `make test`.
# Both create .venv themselves and install the project into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Debian packages the tests need: a real browser for the pages people look at, and
# promtool (in "prometheus") for the alert rules. Installed only when missing; CI runs as
# root on a fresh machine.
DEBIAN_PACKAGES := chromium prometheus
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: up test lint fmt typecheck pytest install system-packages clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

system-packages:
	@missing=""; for pkg in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

up: $(STAMP)
	$(BIN)/ticketing up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

TYPED := ticketing_common ticketing_cli wm_service be_service emulators bench

typecheck: $(STAMP)
	$(BIN)/mypy $(TYPED)

# Much of the suite waits on processes, sockets and timers rather than the CPU: workers
# (pytest-xdist; each with its own embedded Postgres and its own range of ports,
# tests/conftest.py) overlap those waits. Two took it from ~9 to ~5 minutes on two cores;
# with two, the cores were still only half busy (12.8 CPU-min in a 12-min run, in an hour
# when the host stole up to a quarter of them), and a third worker cut pytest's time by
# 14 % in the same hour (641 -> 554 s). 0 runs it in this process.
# Work stealing: with xdist's default the tests queued on one worker stay there, and the
# suite's long tests (fuzz, chaos, failover: 20-90 s each) kept one worker busy 90 s after
# the other two had finished (a timeline of each test's start and end); an idle worker now
# takes half of the longest queue, and the three end within 20-31 s of each other. Two
# pairs of runs, the same afternoon: 437 -> 334 s and 443 -> 423 s. A module's tests may then run on two workers, each building its
# module-scoped fixtures (a browser, a fuzzed service): paid for many times over.
PYTEST_WORKERS ?= 3
PYTEST = $(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist worksteal

pytest: $(STAMP) system-packages
	$(PYTEST)

# The type check runs beside the suite (mypy keeps one core busy for ~15 s), its output
# shown after; either failing fails.
test: lint $(STAMP) system-packages
	@log=$$(mktemp); $(BIN)/mypy $(TYPED) > $$log 2>&1 & typecheck=$$!; \
	trap 'kill $$typecheck 2>/dev/null; rm -f $$log; exit 130' INT TERM; \
	$(PYTEST); tests=$$?; \
	wait $$typecheck; types=$$?; echo "mypy: $$(cat $$log)"; rm -f $$log; \
	[ $$tests -eq 0 ] && [ $$types -eq 0 ]

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .data .mypy_cache .ruff_cache .pytest_cache
