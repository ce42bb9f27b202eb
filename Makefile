# mistral-serve: `make run` serves the API, `make test` runs the whole suite, `make bench` measures.
# Python 3.11 or 3.12 (the first found; `make install PYTHON=python3.12` to choose).
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || echo python3)
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first, pinned: a bare torch requirement pulls PyPI's multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
# Where torch comes from (ops/tools/torch_index.py): "auto" = PyTorch's CPU wheel index as an extra
# index on machines without a CUDA device, PyPI's CUDA build on CUDA machines; "none"; or an index
# URL (e.g. https://download.pytorch.org/whl/cu128). An index that cannot be reached is skipped.
TORCH_INDEX ?= auto
# The extras `make install` installs: dev = local + ops + otel + test, lint and type-check tools.
EXTRAS ?= dev
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=
# The quick run on the second supported Python (.ci/run): packaging, config, CLI and the engine on
# the tiny checkpoint.
SMOKE_TESTS ?= tests/test_packaging.py tests/serve/test_config.py tests/serve/test_config_check.py tests/serve/test_cli.py \
  tests/serve/test_logs.py tests/serve/test_tracing.py tests/serve/engine/test_batching.py

.PHONY: install tools run lint lint-fix test smoke bench autoscale soak clean

install: $(STAMP)

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# NOTE: torch first, pinned, from the index that fits this machine (see TORCH_INDEX).
	$(BIN)/pip install --quiet $$($(PYTHON) ops/tools/torch_index.py "$(TORCH_INDEX)") "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

run: install
	$(BIN)/mistral-serve run

# The Helm chart as a versioned package (dist/mistral-serve-<version>.tgz), linted first.
.PHONY: chart
chart: tools
	.venv-tools/bin/helm lint --strict helm/mistral-serve
	.venv-tools/bin/helm package helm/mistral-serve --destination dist

# helm, checkov (own venv) and Debian's prometheus/promtool for the chart, alert and dashboard tests
tools:
	bash ops/tools/install.sh

# ruff (lint) and mypy (types), configured in pyproject.toml; `make test` runs them first.
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

lint-fix: install
	$(BIN)/ruff check --fix .

test: install tools lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

# A short run on another interpreter in its own venv: make smoke PYTHON=python3.12 VENV=.venv312
smoke: install
	$(BIN)/mistral-serve --version
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q $(SMOKE_TESTS)

bench: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m ops.bench.run
	HF_HUB_OFFLINE=1 $(BIN)/python -m ops.moderation.bench

# A multi-node Ray cluster on this machine (docs/scaling.md): the replicas-over-time recording
# under a load ramp, and a bounded soak with injected faults. Results in ops/results/.
autoscale: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m ops.autoscale

soak: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m ops.soak

clean:
	rm -rf $(VENV) .venv312 .venv-tools ops/results .pytest_cache .mypy_cache .ruff_cache
