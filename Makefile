# One command to set up and run, one to set up and test. See README.md.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: setup run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/ledger db upgrade
	$(BIN)/ledger demo seed --tenant demo --exist-ok
	$(BIN)/ledger projections run
	$(BIN)/ledger projections status
	$(BIN)/ledger tenant list
	$(BIN)/ledger audit verify --tenant demo
	$(BIN)/ledger apikey create --tenant demo --name "make run" --role admin
	$(BIN)/ledger serve --host $(HOST) --port $(PORT)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -n auto

bench: setup
	$(BIN)/python -m bench.append
	$(BIN)/python -m bench.load
	$(BIN)/python -m bench.commands
	$(BIN)/python -m bench.export
	$(BIN)/python -m bench.rebuild
	$(BIN)/python -m bench.http
	$(BIN)/python -m bench.relay

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info ledger.db*
