# Two commands for a newcomer: `make demo` and `make test`. Only python3 and make are needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# `make demo` needs the server and the offline test kit; `make test` adds the test tools.
DEMO_INSTALLED := $(VENV)/.installed-demo
DEV_INSTALLED := $(VENV)/.installed-dev

# Every dependency is pinned by constraints.txt (the Makefile, CI and the image install with
# it); `make lock` re-pins to the newest releases pyproject.toml allows.
CONSTRAINTS := constraints.txt

.PHONY: demo test test-fast lint docs bench fixtures lock clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# setup.py and the C kernels (telephony/audio/_kernels.c) too: an edit to them rebuilds the
# compiled module, which the editable install would otherwise keep as it was.
KERNELS := setup.py telephony/audio/_kernels.c

$(DEMO_INSTALLED): pyproject.toml $(CONSTRAINTS) $(KERNELS) $(VENV)/bin/python
	$(BIN)/python -m pip install --progress-bar on -c $(CONSTRAINTS) -e '.[emulators]'
	touch $(DEMO_INSTALLED)

$(DEV_INSTALLED): pyproject.toml $(CONSTRAINTS) $(KERNELS) $(VENV)/bin/python
	$(BIN)/python -m pip install --progress-bar on -c $(CONSTRAINTS) -e '.[dev]'
	touch $(DEV_INSTALLED) $(DEMO_INSTALLED)

demo: $(DEMO_INSTALLED)  ## a whole call, offline; writes what the caller heard under out/
	$(BIN)/telephony demo

lint: $(DEV_INSTALLED)  ## ruff (lint + format), mypy, and the import contracts in pyproject.toml
	$(BIN)/ruff check telephony tests scripts examples
	$(BIN)/ruff format --check telephony tests scripts examples
	$(BIN)/mypy
	$(BIN)/lint-imports

# Some tests drive real components: chromium and PostgreSQL (infra/test-packages.sh installs
# them with apt-get where allowed) and a Docker engine (infra/docker-engine.sh uses a running
# one, or starts its own and stops it afterwards); elsewhere those tests skip, saying why.
# Most tests wait on sockets and real-time audio, not the CPU: 3 workers on 2 cores cut the
# wall time to under half; a 4th made the timing-bound end-to-end tests flaky here (pytest-xdist;
# the Docker tests start first, see tests/conftest.py).
TEST_WORKERS ?= 3

docs: $(DEV_INSTALLED)  ## the docs site from docs/ into out/site (MkDocs Material; a broken link fails)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

test: lint docs  ## lint, the docs site, then the whole suite (real sockets on 127.0.0.1, no network, no keys)
	@infra/test-packages.sh
	@eval "$$(infra/docker-engine.sh up)"; $(BIN)/python -m pytest -n $(TEST_WORKERS); status=$$?; infra/docker-engine.sh down; exit $$status

# The inner loop: the pure parts (call core, stall watch, model families, wire formats, audio)
# in seconds, no sockets, no servers. `make test` runs these too.
FAST_TESTS := tests/test_call_core.py tests/test_gemini_models.py tests/test_mulaw.py tests/test_resample.py \
	tests/test_transcode.py tests/test_twilio_protocol.py tests/test_mark_ledger.py tests/test_call_parts.py tests/test_call_record.py tests/test_architecture.py \
	tests/test_gemini_ledger.py tests/test_test_kit.py tests/test_call_silence.py tests/test_voicemail.py

test-fast: $(DEV_INSTALLED)  ## unit and core tests only (seconds): the inner loop
	$(BIN)/python -m pytest -q $(FAST_TESTS)

bench: $(DEV_INSTALLED)  ## codec figures (printed, not asserted)
	$(BIN)/telephony bench codec

fixtures: $(DEV_INSTALLED)  ## regenerate fixtures/*.jsonl (needs espeak-ng)
	$(BIN)/python scripts/make_fixtures.py

lock:  ## re-pin every dependency in constraints.txt (a scratch venv, newest allowed releases)
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install -e '.[dev]'
	( echo "# Pins for every install (make, CI, infra/Dockerfile); refreshed by 'make lock'."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable ) > $(CONSTRAINTS)
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) out .pytest_cache
