# Two commands for a newcomer: `make demo` and `make test`. Only python3 and make are needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test bench fixtures clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

demo: $(INSTALLED)  ## a whole call, offline; writes what the caller heard under out/
	$(BIN)/telephony demo

test: $(INSTALLED)  ## the whole suite (real sockets on 127.0.0.1, no network, no keys)
	$(BIN)/python -m pytest

bench: $(INSTALLED)  ## codec figures (printed, not asserted)
	$(BIN)/telephony bench codec

fixtures: $(INSTALLED)  ## regenerate fixtures/*.jsonl (needs espeak-ng)
	$(BIN)/python scripts/make_fixtures.py

clean:
	rm -rf $(VENV) out .pytest_cache
