# hazardhub: `make demo` runs the whole hub on embedded defaults; `make test` installs what the
# tests need (Python deps in .venv, Debian's mosquitto and influxdb when missing) and runs them.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck imports pytest venv services clean bench chaos

$(STAMP): pyproject.toml
	@if ! $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null; then \
		echo "installing python3-venv"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; \
	fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/hazardhub demo

# Debian's mosquitto and influxdb (the fixtures start their own instances on free ports), mbpoll
# (a Modbus client other than ours), chromium (browser tests of the dashboard), and promtool
# (Debian's prometheus), vsftpd and jq, which check the Prometheus and vsftpd files and the jq
# recipe the docs give.
services:
	@missing=""; \
	test -x /usr/sbin/mosquitto || command -v mosquitto >/dev/null || missing="$$missing mosquitto"; \
	test -x /usr/bin/influxd || command -v influxd >/dev/null || missing="$$missing influxdb"; \
	command -v mbpoll >/dev/null || missing="$$missing mbpoll"; \
	command -v socat >/dev/null || missing="$$missing socat"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	test -d /usr/share/fonts/truetype/wqy || missing="$$missing fonts-wqy-microhei"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v jq >/dev/null || missing="$$missing jq"; \
	test -x /usr/sbin/vsftpd || command -v vsftpd >/dev/null || missing="$$missing vsftpd"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing (their services not started: the tests start their own)"; \
		rc=/usr/sbin/policy-rc.d; made=; \
		if [ ! -e $$rc ]; then printf '#!/bin/sh\nexit 101\n' > $$rc && chmod 755 $$rc && made=1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $$missing; status=$$?; \
		if [ -n "$$made" ]; then rm -f $$rc; fi; \
		exit $$status; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

imports: $(STAMP)
	$(VENV)/bin/lint-imports

# two workers, one test file each at a time: most of the suite waits on outages and processes.
# The tests that wait out a minute-long outage (marker `outage`: nearly idle, a minute each) run
# beside them in a process group of their own (stopped with the rest on Ctrl-C), their output
# shown at the end. That process collects only the files that mark tests `outage` (collecting
# all of them took ~45 s of CPU, beside the workers, to select 3 tests).
# Bytecode is cached in build/pycache for the test run (the suite's processes and the hubs and
# gateways its tests start): without it (PYTHONDONTWRITEBYTECODE set, as on our machines) each of
# them compiled every module it imports again: ~45 s of CPU to collect the suite, against ~17 s.
pytest: export PYTHONPYCACHEPREFIX := $(CURDIR)/build/pycache
pytest: export PYTHONDONTWRITEBYTECODE :=
pytest: $(STAMP) services
	@side=$$(mktemp); outage=$$(grep -l 'mark\.outage' tests/test_*.py); \
	setsid env --default-signal=INT $(PY) -m pytest -q -p no:cacheprovider -m outage $$outage \
		> $$side 2>&1 & pid=$$!; \
	trap 'kill -INT -- -$$pid 2>/dev/null; wait $$pid; rm -f $$side; exit 130' INT TERM; \
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not outage"; main=$$?; \
	wait $$pid; rc=$$?; \
	echo "--- the outage tests, run beside the others:"; cat $$side; rm -f $$side; \
	test $$main -eq 0 && test $$rc -eq 0

test: lint typecheck imports pytest

# issue 10: every part a process on loopback under a fault schedule (~5 min), then every reading
# and alarm transition accounted for (docs/chaos.md). `make pytest` runs its short form.
chaos: $(STAMP) services
	$(PY) -m chaos.run --report build/chaos-report.json

bench: $(STAMP)
	$(PY) bench/core.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hazardhub-demo
