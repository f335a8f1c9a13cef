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
BENCH_ARGS ?=

.PHONY: run test bench lint clean install-run install-test deploy

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMPS)/py-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[smtp]"
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/py-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[dev]"
	@mkdir -p $(STAMPS) && touch $@

# bench/setup-postfix.sh preseeds debconf so the postfix package installs unconfigured (tests run private instances)
$(STAMPS)/apt-test: deps/apt-test.txt scripts/ensure-apt.sh bench/setup-postfix.sh
	bench/setup-postfix.sh
	scripts/ensure-apt.sh deps/apt-test.txt
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/py-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[smtp,bench]"
	@mkdir -p $(STAMPS) && touch $@

# bench/setup-postfix.sh preseeds debconf so the postfix package installs unconfigured (bench runs its own)
$(STAMPS)/apt-bench: deps/apt-bench.txt deps/apt-test.txt scripts/ensure-apt.sh bench/setup-postfix.sh
	bench/setup-postfix.sh
	scripts/ensure-apt.sh deps/apt-bench.txt deps/apt-test.txt
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/npm-bench: bench/node/package.json bench/node/package-lock.json $(STAMPS)/apt-bench
	npm ci --prefix bench/node --no-audit --no-fund
	@mkdir -p $(STAMPS) && touch $@

# npm tools from package-lock.json: osls (Serverless Framework v3 line; `serverless package` test, deploys), azurite
$(STAMPS)/npm-test: package.json package-lock.json | $(STAMPS)/apt-test
	npm ci --no-audit --no-fund
	@mkdir -p $(STAMPS) && touch $@

install-run: $(STAMPS)/py-run
install-test: $(STAMPS)/py-test $(STAMPS)/apt-test $(STAMPS)/npm-test

## make run: the whole pipeline on this machine (SMTP edge on $(LISTEN), folder store, folder queue)
run: install-run
	$(BIN)/mailpipe serve --listen $(LISTEN) --store $(STORE) --queue $(QUEUE)

## make test: every test, with real components (installs what it needs first)
test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make bench: the benchmarks in bench/, with the peers they compare against
## (BENCH_ARGS=--quick for a run of a few minutes; results also in bench/out/*.json)
bench: $(STAMPS)/py-bench $(STAMPS)/apt-bench $(STAMPS)/npm-bench $(STAMPS)/npm-test
	$(BIN)/python -m bench.parse $(BENCH_ARGS)
	$(BIN)/python -m bench.ingest $(BENCH_ARGS)
	$(BIN)/python -m bench.enrich $(BENCH_ARGS)
	$(BIN)/python -m bench.rules
	$(BIN)/python -m bench.replay $(BENCH_ARGS)
	$(BIN)/python -m bench.workers $(BENCH_ARGS)
	$(BIN)/python -m bench.coldstart $(BENCH_ARGS)

## make deploy STAGE=<stage>: deploy one customer stage on its cloud (stages.yml, docs/stages.md)
deploy: $(STAMPS)/py-test $(STAMPS)/npm-test
	$(BIN)/python deploy/mailpipe-deploy $(STAGE)

lint: $(STAMPS)/py-test
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(STAMPS) var node_modules bench/node/node_modules
