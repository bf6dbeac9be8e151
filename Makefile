# `make run` starts the node on config/default.toml; `make test` runs the test suite.
# Both create .venv and install sniperbot into it when it is missing or stale.
PYTHON ?= python3
VENV ?= .venv
ARGS ?=
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/sniperbot run --config config/default.toml $(ARGS)

test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .

bench: $(BIN)/.installed
	$(BIN)/python bench/bus.py
	$(BIN)/python bench/tick_to_trade.py
	$(BIN)/python bench/restart.py
	$(BIN)/python bench/memory.py

clean:
	rm -rf $(VENV) .sniperbot .pytest_cache
