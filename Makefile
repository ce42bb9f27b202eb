# mistral-serve: `make run` serves the API, `make test` runs the whole suite, `make bench` measures.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# The on-disk CPU wheel on CPU machines; on a CUDA machine with internet the same pin pulls
# PyPI's CUDA build (see README, "GPU machines").
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: install tools run test fuzz bench autoscale soak clean

install: $(STAMP)

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# NOTE: torch first, pinned: a bare torch requirement with no torch installed pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev]"
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

test: install tools
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

# Long property-based fuzzing of the OpenAPI document against a running stack (schemathesis):
# FUZZ_EXAMPLES per operation, over 5,000 cases in all; `make test` runs a bounded pass (20 each).
FUZZ_EXAMPLES ?= 1000
fuzz: install
	HF_HUB_OFFLINE=1 MISTRAL_SERVE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -s tests/security/test_fuzz_openapi.py $(PYTEST_ARGS)

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
	rm -rf $(VENV) .venv-tools ops/results .pytest_cache
