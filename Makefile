# Two commands do all set-up on a fresh machine:
#   make demo   creates .venv, installs torch's CPU build and lrkit, runs the main job
#   make test   creates .venv, installs lrkit with its test tools, runs the test suite
# `make test-fast` runs the tests that matter while editing (a few minutes: no Ray, no
# browser, no slow marks); `make lint` runs ruff and mypy; `.ci/run` runs `make test lint`;
# `make bench` the benchmarks; `make docs` builds the documentation site (mkdocs build --strict,
# into site/; `make test` builds it too, in tests/test_docs_site.py), `make docs-serve` serves it.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LRKIT := $(VENV)/bin/lrkit
# pip byte-compiles what it installs. Where PYTHONDONTWRITEBYTECODE=1 is set (many container
# images), Python never caches bytecode itself, so without this every process would compile
# torch's source again: `import torch` 6.3 s instead of 2.6 s, `make demo` 19-21 s instead
# of 7.4-7.8 s, every run, for 43 s more of install once (docs/getting-started/install.md).
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
# The CPU build of torch. A bare `torch` requirement with no torch installed makes pip
# fetch a multi-GB CUDA build, so the CPU wheel goes in first and then satisfies torch>=2.4.
TORCH_SPEC ?= torch==2.13.0
# The report's browser test drives Debian's chromium (Playwright uses it, no download).
CHROMIUM_INSTALL ?= (apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || (apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends chromium >/dev/null 2>&1))
FAST_TESTS ?= -m "not slow and not ray and not browser"
# Property tests explore fewer examples while editing (the full suite runs 60 each).
FAST_EXAMPLES ?= 10

BENCH_VENV ?= .venv-bench
SHARED_MNIST := $(wildcard ../shared/data/mnist)

.PHONY: demo test test-fast lint docs docs-serve bench clean

# What the main job needs: torch's CPU build and lrkit (no test tools).
$(VENV)/.installed-run: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) "$(TORCH_SPEC)"
	$(PIP) -e .
	touch $@

# The test tools on top: pytest, hypothesis, ruff, mypy, Ray, Playwright and chromium.
$(VENV)/.installed-dev: $(VENV)/.installed-run
	$(PIP) -e ".[dev]"
	command -v chromium >/dev/null 2>&1 || $(CHROMIUM_INSTALL) || echo "chromium not installed: the browser test of the report will skip"
	touch $@

demo: $(VENV)/.installed-run
	$(LRKIT) find

test: $(VENV)/.installed-dev
	$(PY) -m pytest

test-fast: $(VENV)/.installed-dev
	LRKIT_HYPOTHESIS_EXAMPLES=$(FAST_EXAMPLES) $(PY) -m pytest -q $(FAST_TESTS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests bench docs/hooks
	$(VENV)/bin/ruff format --check src tests bench docs/hooks
	$(VENV)/bin/mypy

# The site (mkdocs.yml): docs/ as it is, the CLI reference generated from the CLI's own --help
# and BENCHMARKS.md read at build time (docs/hooks/). Material's banner about MkDocs 2.0 is off.
DOCS_ENV := NO_MKDOCS_2_WARNING=1

docs: $(VENV)/.installed-dev
	$(DOCS_ENV) $(PY) -m mkdocs build --strict --site-dir site

docs-serve: $(VENV)/.installed-dev
	$(DOCS_ENV) $(PY) -m mkdocs serve

# Benchmarks run in their own environment (lrkit plus bench/requirements.txt: torch-lr-finder,
# Prodigy, D-Adaptation and Schedule-Free to compare against, never lrkit's dependencies);
# results go to bench/results/ and BENCHMARKS.md. bench_suggest.py caches its runs in
# bench/results/suggest/ and, run again, does only what is missing.
$(BENCH_VENV)/.installed: pyproject.toml bench/requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -c "import torch" 2>/dev/null || $(BENCH_VENV)/bin/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BENCH_VENV)/bin/python -m pip install --quiet -e . -r bench/requirements.txt
	touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/bench_find.py $(if $(SHARED_MNIST),--data-dir $(SHARED_MNIST))
	$(BENCH_VENV)/bin/python bench/bench_sweep.py $(if $(SHARED_MNIST),--data-dir $(SHARED_MNIST))
	$(BENCH_VENV)/bin/python bench/bench_engine.py $(if $(SHARED_MNIST),--data-dir $(SHARED_MNIST))
	$(BENCH_VENV)/bin/python bench/bench_noise.py $(if $(SHARED_MNIST),--data-dir $(SHARED_MNIST))
	$(BENCH_VENV)/bin/python bench/bench_suggest.py $(if $(SHARED_MNIST),--data-dir $(SHARED_MNIST))
	$(BENCH_VENV)/bin/python bench/suggest_horizon.py $(if $(SHARED_MNIST),--data-dir $(SHARED_MNIST))
	$(BENCH_VENV)/bin/python bench/bench_batch.py $(if $(SHARED_MNIST),--data-dir $(SHARED_MNIST))
	$(BENCH_VENV)/bin/python bench/bench_laws.py $(if $(SHARED_MNIST),--data-dir $(SHARED_MNIST))
	$(BENCH_VENV)/bin/python bench/bench_laws.py $(if $(SHARED_MNIST),--data-dir $(SHARED_MNIST)) --families sp-deep-adam,mup-deep-adam --repeats 3 --out bench/results/bench_laws_heldout_repeats3.json
	$(BENCH_VENV)/bin/python bench/laws_refit.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis site
