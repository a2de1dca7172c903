# Every target creates or updates the project virtualenv first, so each works on a fresh machine
# with nothing but Python 3.11+ installed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run tools test test-kafka lint bench bench-replicas bench-components profile clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Omniroute needs Python 3.11 or newer (try: make PYTHON=python3.11 ...)") if sys.version_info < (3, 11) else None'
	@echo "Setting up $(VENV) (first run takes a minute)..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# Output goes to a log, shown only if the install fails.
	@( $(BIN)/python -m pip install --disable-pip-version-check --upgrade pip \
	   && $(BIN)/python -m pip install --disable-pip-version-check -e '.[dev]' ) \
	   > $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	@touch $(STAMP)

## run: start PostgreSQL, Kafka, every service, the store console and demo data; Ctrl-C stops it all
run: $(STAMP)
	@$(BIN)/omniroute run

## tools: get what the tests run: kustomize (built with Go, about a minute) and Chromium for the
##        browser tests (Debian's, with apt-get as root); the first time only
tools: $(STAMP)
	@$(BIN)/python -m tests.support.tools

## test: unit and integration tests against a real PostgreSQL and Kafka-protocol broker
test: tools
	@$(BIN)/pytest

## test-kafka: the same tests against Apache Kafka (one KRaft node; jars fetched once with Maven, Java 17+)
test-kafka: tools
	@$(BIN)/python -m tests.support.apache_kafka -- $(BIN)/pytest

## lint: ruff, mypy and the import-linter contracts (services never import each other)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## bench: what users meet, through the gateway of `omniroute run`, as ratios to ceilings measured in the same run
bench: $(STAMP)
	@$(BIN)/python -m tests.support.tools wrk
	@$(BIN)/python -m bench.system_bench

## profile: a shorter bench, with py-spy flame graphs and tables of every service while orders run at the most (into docs/profile/)
profile: $(STAMP)
	@$(BIN)/python -m tests.support.tools wrk
	@$(BIN)/python -m bench.system_bench --order-seconds 30 --steady-seconds 10 --read-seconds 5 --profile docs/profile

## bench-replicas: the same with a second process of each consuming service, against Apache Kafka
bench-replicas: $(STAMP)
	@$(BIN)/python -m tests.support.tools wrk
	@$(BIN)/python -m bench.system_bench --replicas 2

## bench-components: each part against its own ceiling (reservations, outbox relay, orders API, webhooks)
bench-components: $(STAMP)
	@$(BIN)/python -m bench.inventory_bench
	@$(BIN)/python -m bench.orders_bench
	@$(BIN)/python -m bench.webhooks_bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .hypothesis
