# mailpipe — the two commands a newcomer needs: `make run` and `make test`.
# Everything is installed by these targets: the Python venv (.venv), npm tools (node_modules) and Debian packages.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .stamps
LISTEN ?= 127.0.0.1:2525
STORE ?= file://./var/mail
QUEUE ?= file://./var/queue
PYTEST_ARGS ?=

.PHONY: run test bench lint clean install-run install-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMPS)/py-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[smtp]"
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/py-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[dev]"
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/apt-test: deps/apt-test.txt scripts/ensure-apt.sh
	scripts/ensure-apt.sh deps/apt-test.txt
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/py-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[dev,bench]"
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/apt-bench: deps/apt-bench.txt scripts/ensure-apt.sh
	scripts/ensure-apt.sh deps/apt-bench.txt
	@mkdir -p $(STAMPS) && touch $@

install-run: $(STAMPS)/py-run
install-test: $(STAMPS)/py-test $(STAMPS)/apt-test

## make run: the whole pipeline on this machine (SMTP edge on $(LISTEN), folder store, folder queue)
run: install-run
	$(BIN)/mailpipe serve --listen $(LISTEN) --store $(STORE) --queue $(QUEUE)

## make test: every test, with real components (installs what it needs first)
test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make bench: the benchmarks in bench/, with the peers they compare against
bench: $(STAMPS)/py-bench $(STAMPS)/apt-bench
	$(BIN)/python -m bench.parse
	$(BIN)/python -m bench.ingest

lint: $(STAMPS)/py-test
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(STAMPS) var node_modules
