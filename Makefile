# petseg: two commands do everything: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Real Oxford-IIIT Pet photos beside the project, used by the tests and notebooks when present:
# 568 pairs in the official layout (REAL), and 26 pairs (MINI).
REAL   := $(abspath ../shared/data/oxford-iiit-pet-real)
MINI   := $(abspath ../shared/data/oxford-iiit-pet-mini)
NBVAL  := PETSEG_QUICK=1 $(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider

.PHONY: install demo test unit notebooks book ui-test lint lab sync bench clean

install: $(STAMP)

# Create .venv when missing and install the course package with its dev extras.
# torch and torchvision are pinned in pyproject.toml (2.14.1 / 0.29.1).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

## The main job: train, evaluate and draw figures (sample dataset when the real one is absent).
demo: $(STAMP)
	$(PY) -m petseg_lib.demo

## Everything CI runs: lint, unit tests (a two-notebook book among them), every notebook by nbval.
test: lint unit notebooks

# One test process per core (pytest-xdist; tests/conftest.py gives each its share of threads);
# the tests of one file stay in one process, so its fixtures are built once.
unit: $(STAMP)
	PETSEG_QUICK=1 $(PY) -m pytest tests -n auto --dist loadfile

# Every notebook trains and scores on the 568 real pairs when they are present; else notebooks
# 01 and 02 show the 26 real pairs of the mini set and the others use the offline sample.
notebooks: $(STAMP)
	if [ -d "$(REAL)" ]; then \
	  PETSEG_DATA="$(REAL)" $(NBVAL) notebooks/0[1-9]_*.ipynb; \
	elif [ -d "$(MINI)" ]; then \
	  PETSEG_DATA="$(MINI)" $(NBVAL) notebooks/01_*.ipynb notebooks/02_*.ipynb; \
	  $(NBVAL) notebooks/0[3-9]_*.ipynb; \
	else \
	  $(NBVAL) notebooks/0[1-9]_*.ipynb; \
	fi

## The course as a static site: every notebook executed (quick mode; FULL=1 for the report's
## settings) into site/, with site/index.html as the course map (tools/book.py).
book: $(STAMP)
	$(PY) tools/book.py $(if $(filter 1,$(FULL)),--full)

## What a learner clicks: notebook 06 in JupyterLab, driven in headless Chromium (tests/ui).
## Needs Debian's chromium (`apt-get install chromium`); screenshots go to outputs/ui/.
ui-test: $(STAMP)
	$(PY) -m pytest -m ui tests/ui -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check petseg_lib tests benchmarks notebooks tools

## Start JupyterLab in notebooks/.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks

## Re-pair every notebook with its py:percent twin after editing either one.
sync: $(STAMP)
	$(VENV)/bin/jupytext --sync notebooks/[0-9]*.ipynb

## Speed of the models against a reference, and of the data pipeline (benchmarks/README.md).
## Installs the `bench` extra (segmentation-models-pytorch, the reference) the first time.
bench: $(VENV)/.bench-installed
	$(PY) benchmarks/bench.py

$(VENV)/.bench-installed: $(STAMP)
	$(PY) -m pip install -e ".[dev,bench]"
	touch $@

clean:
	rm -rf outputs site .pytest_cache .ruff_cache
