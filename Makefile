# Careline developer commands. `make run` and `make test` are all a newcomer needs.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint bench-core bench clean

# Bytecode is compiled at install: without it every start compiles ~1,000 modules (5-15 s).
$(STAMP): pyproject.toml requirements.lock
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install -q --python $(BIN)/python --compile-bytecode -c requirements.lock -e '.[dev]'
	$(BIN)/python -m compileall -q bots core dialogs admin_api
	touch $(STAMP)

## Run Careline on its embedded defaults (SQLite, local NLU, local mailbox, web chat).
run: $(STAMP)
	$(BIN)/careline serve

## Run the whole test suite (PostgreSQL tests run when a server is installed).
test: $(STAMP)
	scripts/install-prism.sh
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench-core: $(STAMP)
	$(BIN)/python -m bench.ticket_bench

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache var careline.db*
