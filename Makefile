# Two commands do all set-up on a fresh machine:
#   make demo   creates .venv, installs torch's CPU build and lrkit, runs the main job
#   make test   creates .venv, installs lrkit with its test tools, runs the test suite
# `make lint` runs ruff and mypy; `.ci/run` runs `make test lint`.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LRKIT := $(VENV)/bin/lrkit
# The CPU build of torch. A bare `torch` requirement with no torch installed makes pip
# fetch a multi-GB CUDA build, so the CPU wheel goes in first and then satisfies torch>=2.4.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	$(LRKIT) find

test: $(VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
