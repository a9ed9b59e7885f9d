# ringwatch — the two commands of the README, and what they need.
#   make demo   set up, start Neo4j, run the end-to-end job on a generated exchange
#   make test   set up, lint (ruff), type-check (mypy), then run the whole test suite (it starts and stops its own
#               throwaway Neo4j)

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)

.PHONY: setup demo test lint types unit integration neo4j-start neo4j-stop neo4j-status bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v java >/dev/null || { echo "Java 17+ is needed for Neo4j (apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "Maven is needed to fetch the Neo4j jars (apt-get install maven)"; exit 1; }
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

demo: setup
	$(BIN)/ringwatch demo $(DEMO_ARGS)

# The README's test command: lint, formatting and types first (they fail in seconds), then every test.
test: lint types
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

integration: setup
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

neo4j-start: setup
	$(BIN)/ringwatch neo4j start
neo4j-stop: setup
	$(BIN)/ringwatch neo4j stop
neo4j-status: setup
	$(BIN)/ringwatch neo4j status

bench: setup
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache
