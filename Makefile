# Two entry points (see README): `make demo` runs the main job, `make test` runs every test.
# Both build .venv from scratch on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench bench-pydvl-env clean labextension chromium

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch first, pinned: the CPU wheel on disk. A bare `torch` would pull a CUDA build.
	$(BIN)/pip install torch==2.13.0
	# The labextension is built below (target labextension), not by pip's build hook; the
	# venv's link to it goes first, so pip never reinstalls files through it.
	if [ -L $(LABEXT_SHARE) ]; then rm $(LABEXT_SHARE); fi
	SKIP_JUPYTER_BUILDER=1 $(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

# The JupyterLab / Notebook 7 renderer: node packages from the lockfile, then tsc and
# jupyter-builder into dvl_jupyter/labextension (what the wheel ships). The venv gets a
# symlink to it, as `jupyter labextension develop` would make, so a rebuild shows at once.
LABEXT := labextension
LABEXT_OUT := dvl_jupyter/labextension
LABEXT_SHARE := $(VENV)/share/jupyter/labextensions/dvl-jupyter
LABEXT_NODE := $(LABEXT)/node_modules/.installed
LABEXT_SRC := $(wildcard $(LABEXT)/src/*.ts $(LABEXT)/style/* $(LABEXT)/scripts/*.mjs) \
	$(LABEXT)/package.json $(LABEXT)/tsconfig.json $(LABEXT)/install.json

$(LABEXT_NODE): $(LABEXT)/package.json $(LABEXT)/package-lock.json
	cd $(LABEXT) && npm ci --no-audit --no-fund
	touch $@

# build:prod also bundles the chart as one script, standalone.js, that display.py inlines in
# a result's HTML for VS Code, Colab and nbconvert (where labextensions do not load).
$(LABEXT_OUT)/install.json: $(LABEXT_NODE) $(LABEXT_SRC) | $(STAMP)
	cd $(LABEXT) && PATH="$(CURDIR)/$(BIN):$$PATH" npm run build:prod
	touch $@

$(LABEXT_OUT)/standalone.js: $(LABEXT_OUT)/install.json
	@test -f $@ || (cd $(LABEXT) && npm run build:standalone)

labextension: $(LABEXT_OUT)/install.json $(LABEXT_OUT)/standalone.js
	@if [ "$$(readlink $(LABEXT_SHARE))" != "$(CURDIR)/$(LABEXT_OUT)" ]; then \
		rm -rf $(LABEXT_SHARE) && mkdir -p $(dir $(LABEXT_SHARE)) && \
		ln -s $(CURDIR)/$(LABEXT_OUT) $(LABEXT_SHARE); fi

# Debian's chromium for the browser tests (Playwright's own browser download does not work
# here). CI runs as root; elsewhere install it once by hand.
CHROMIUM := /usr/bin/chromium
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; fi

# Executes notebooks/shapley_skorch.ipynb headless (nbclient) in a kernel working in out/:
# the executed notebook, its figures, the result and the cache land there. Add `--ci` for the
# tiny settings the tests use.
demo: $(STAMP)
	$(BIN)/python -m dvl_jupyter.demo --out out

# DVL_REQUIRE_BROWSER=1: the browser tests fail, rather than skip, when something is missing.
test: $(STAMP) labextension chromium
	DVL_REQUIRE_BROWSER=1 $(BIN)/python -m pytest

# pyDVL 0.10 pins numpy 1.x, so the comparison runs it from a venv of its own (with torch
# 2.13.0 first, as above); bench_fastpath.py finds it at .venv-pydvl.
PYDVL_VENV := .venv-pydvl
PYDVL_STAMP := $(PYDVL_VENV)/.installed
$(PYDVL_STAMP): pyproject.toml
	$(PY) -m venv $(PYDVL_VENV)
	$(PYDVL_VENV)/bin/pip install --upgrade pip
	$(PYDVL_VENV)/bin/pip install torch==2.13.0
	SKIP_JUPYTER_BUILDER=1 $(PYDVL_VENV)/bin/pip install pydvl==0.10.0 -e .
	touch $@

bench-pydvl-env: $(PYDVL_STAMP)

# Benchmarks (never part of `make test`): one-by-one fits, the cache, and the fast path
# against one-by-one skorch fits and pyDVL 0.10, measured side by side in one run each.
bench: $(STAMP) $(PYDVL_STAMP)
	$(BIN)/python benchmarks/bench_utility.py
	$(BIN)/python benchmarks/bench_cache.py
	$(BIN)/python benchmarks/bench_fastpath.py

clean:
	rm -rf $(VENV) $(PYDVL_VENV) out .dvl_cache
