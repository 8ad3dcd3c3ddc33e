# The two commands: `make run` and `make test`. Both set everything up on a fresh Debian 12.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit deps venv clean demo

deps:
	scripts/install-deps

$(STAMP): pyproject.toml scripts/apt-packages.txt
	scripts/install-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

## make run: the milter on its embedded defaults (inet:8894@127.0.0.1, metrics on 127.0.0.1:9466)
run: $(STAMP)
	$(BIN)/nullmx-milter run --allow-root $(if $(CONFIG),--config $(CONFIG))

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## make unit: the fast tests alone (no DNS server, MTA, packaging, fuzzing or benchmarks)
unit: $(STAMP)
	$(BIN)/pytest -m "not integration and not mta and not packaging and not fuzz and not bench and not container"

## make test: lint, types and every test tier
test: lint typecheck
	$(BIN)/pytest

clean:
	rm -rf $(VENV) build dist *.egg-info milter/*.egg-info

## make demo: DNS + milter + Postfix in a network namespace, one message, transcript + metrics
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

## make image: the container image (container/Containerfile) from the Debian package, with podman
.PHONY: image
image: deps
	scripts/build-image

## make deb: the Debian package (debian/) into dist/; make dist: sdist + wheel into dist/
.PHONY: deb dist
deb: deps
	scripts/build-deb dist

dist: $(STAMP)
	$(BIN)/python -m build --outdir dist .

.PHONY: fuzz soak

## make fuzz: the atheris fuzz target for FUZZ_SECONDS (default 600); findings land in fuzz/
FUZZ_SECONDS ?= 600
fuzz: $(STAMP)
	mkdir -p fuzz
	PYTHONPATH=tests $(BIN)/python tests/fuzz_target.py -max_total_time=$(FUZZ_SECONDS) \
		-max_len=4096 -artifact_prefix=fuzz/ fuzz/corpus

## make soak: 100,000 RCPTs over 16 concurrent milter sessions against Knot (SOAK_RCPTS)
SOAK_RCPTS ?= 100000
soak: $(STAMP)
	cd tests && ../$(BIN)/python soak.py --rcpts $(SOAK_RCPTS)

.PHONY: mutation
## make mutation: mutmut on the pure modules against the fast tests; every module must have
## >= 90 % of its mutants killed or listed in tests/mutation_equivalents.txt (see docs/development.md)
$(VENV)/.mutation: $(STAMP)
	$(BIN)/pip install -q -e '.[test,mutation]'
	touch $@

mutation: $(VENV)/.mutation
	$(BIN)/python scripts/mutation.py --readme docs/development.md $(MUTATION_ARGS)

.PHONY: bench bench-smoke
## make bench: every benchmark in bench/ (about 6 minutes); rewrites the figures in docs/performance.md
bench: $(STAMP)
	$(BIN)/python bench/run.py --readme docs/performance.md

## make bench-smoke: the benchmark harness on tiny sizes (asserts it works, not its figures)
bench-smoke: $(STAMP)
	$(BIN)/pytest -m bench
