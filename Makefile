# Data Hub — two commands: `make demo` and `make test` (both set everything up first).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
ROWS ?= 2000

export DATAHUB_HOME ?= $(CURDIR)/.datahub
export DAGSTER_HOME ?= $(DATAHUB_HOME)/dagster
export DATAHUB_PIPELINES_DIR ?= $(CURDIR)/pipelines_xml
export DATAHUB_DATA_DIR ?= $(CURDIR)/data
# secrets of the crm example's local servers (datahub demo starts them; see pipelines_xml/crm)
export CRM_DB ?= datahub
export CRM_PRODUCTS_MONGO_URI ?= mongodb://127.0.0.1:27019/

.PHONY: setup demo dev test test-fast lint bench-load bench-tpch bench-overhead bench-watch-tick \
        bench-watch-burst bench-mongo bench-jdbc spark-stop servers-stop clean

setup: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	@bash scripts/fetch_jars.sh $(BIN)/python

$(VENV)/.installed: pyproject.toml scripts/ensure_system.sh
	bash scripts/ensure_system.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

# the demo runs every pipeline on engine=auto (docs/pipelines.md, "Engines"): small inputs on
# DuckDB, databases and large inputs on Spark, whose server starts with the first Spark step
demo: export DATAHUB_ENGINE ?= auto
demo: setup
	$(BIN)/datahub validate
	$(BIN)/datahub demo --fresh --rows $(ROWS)
	$(BIN)/datahub launch --assets '*'
	@echo
	@echo "== Iceberg tables (catalog $(DATAHUB_HOME)/catalog.db) =="
	@$(BIN)/datahub tables
	@echo
	@echo "CSV exports: $(DATAHUB_DATA_DIR)/<app>/service/"
	@echo "Open the Dagster UI with:  make dev   (then http://localhost:3000)"

# the Dagster UI (dg dev, http://localhost:3000) and beside it the front door (datahub serve,
# http://127.0.0.1:$(SERVICE_PORT)), which reloads the UI's code location after an approved
# change; Ctrl-C (or dg dev ending) stops both
SERVICE_PORT ?= 8080
dev: export DATAHUB_ENGINE ?= auto
dev: export DATAHUB_DAGSTER_URL ?= http://127.0.0.1:3000
dev: setup
	@$(BIN)/datahub serve --port $(SERVICE_PORT) & serve=$$!; \
	  trap 'kill $$serve 2>/dev/null; wait $$serve 2>/dev/null' EXIT INT TERM; \
	  echo "the front door: http://127.0.0.1:$(SERVICE_PORT) (users: datahub users add NAME --password-stdin)"; \
	  $(BIN)/dg dev

lint: setup
	$(BIN)/ruff check datahub_assets datahub_resources tests bench
	$(BIN)/ruff format --check datahub_assets datahub_resources tests bench
	$(BIN)/pyright

# the tests' shared Spark Connect server (.datahub/test-spark) is stopped afterwards, pass or fail
test: setup lint
	$(BIN)/dg check defs
	$(BIN)/pytest -q -n 2 --dist loadgroup; rc=$$?; \
	  DATAHUB_SPARK_STATE=$(CURDIR)/.datahub/test-spark $(BIN)/datahub spark stop >/dev/null; \
	  exit $$rc

test-fast: setup
	$(BIN)/pytest -q -m "not slow and not spark"

bench-load: setup
	$(BIN)/python bench/run.py load

bench-tpch: setup
	$(BIN)/python bench/run.py tpch

bench-overhead: setup
	$(BIN)/python bench/run.py overhead

bench-watch-tick: setup
	$(BIN)/python bench/run.py watch-tick

bench-watch-burst: setup
	$(BIN)/python bench/run.py watch-burst

bench-mongo: setup
	$(BIN)/python bench/run.py mongo

bench-jdbc: setup
	$(BIN)/python bench/run.py jdbc

.PHONY: bench-chaos bench-malformed bench-maintain
bench-chaos: setup
	$(BIN)/python bench/run.py chaos --rounds 100

bench-malformed: setup
	$(BIN)/python bench/run.py malformed

bench-maintain: setup
	$(BIN)/python bench/run.py maintain

# issue #12: TPC-H, the file-drop burst and the per-asset overhead on the DuckDB engine
# (bench/README.md, "DuckDB engine"); the Spark figures first, the DuckDB results name them
.PHONY: bench-tpch-duckdb bench-duckdb
bench-tpch-duckdb: setup
	$(BIN)/python bench/run.py tpch-duckdb

bench-duckdb: setup
	$(BIN)/python bench/run.py tpch-duckdb
	$(BIN)/python bench/run.py tpch-platform --engine spark
	$(BIN)/python bench/run.py tpch-platform --engine duckdb
	$(BIN)/python bench/run.py watch-burst --engine spark
	$(BIN)/python bench/run.py watch-burst --engine duckdb
	$(BIN)/python bench/run.py overhead --engine duckdb

# issue #21: the front door (bench/service/README.md); results into bench/RESULTS.md
.PHONY: bench-service
bench-service: setup
	$(BIN)/python bench/run.py service

spark-stop:
	-$(BIN)/datahub spark stop

servers-stop:
	-$(BIN)/datahub servers stop --purge

clean: spark-stop servers-stop
	rm -rf $(DATAHUB_HOME) $(DATAHUB_DATA_DIR)
