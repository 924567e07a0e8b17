# Two commands for a newcomer: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo-output

CORPUS := .cache/corpus

.PHONY: demo test lint bench venv clean corpus

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/geoduck demo $(DEMO_DIR)

# Real files from pinned Debian packages (tools/fetch_corpus.py; skipped when already there).
corpus: $(STAMP)
	$(BIN)/python tools/fetch_corpus.py $(CORPUS)

test: $(STAMP) corpus
	GEODUCK_CORPUS=$(CURDIR)/$(CORPUS) $(BIN)/python -m pytest -q

# ruff (lint + format check) on the code, tests, benchmarks and tools; mypy on the package
# (settings in pyproject.toml). Both come with the `test` extra.
lint: $(STAMP)
	$(BIN)/ruff check geoduck tests benchmarks tools
	$(BIN)/ruff format --check geoduck tests benchmarks tools
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_build.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
