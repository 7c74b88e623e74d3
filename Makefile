# petseg: two commands do everything: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint lab sync bench clean

install: $(STAMP)

# Create .venv when missing and install the course package with its dev extras.
# torch and torchvision are pinned in pyproject.toml (2.14.1 / 0.29.1).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

## The main job: train, evaluate and draw figures (sample dataset when the real one is absent).
demo: $(STAMP)
	$(PY) -m petseg_lib.demo

## Lint, unit tests and the notebooks (executed by nbval in quick mode).
test: $(STAMP) lint
	PETSEG_QUICK=1 MPLBACKEND=Agg $(PY) -m pytest tests

lint: $(STAMP)
	$(VENV)/bin/ruff check petseg_lib tests benchmarks notebooks

## Start JupyterLab in notebooks/.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks

## Re-pair every notebook with its py:percent twin after editing either one.
sync: $(STAMP)
	$(VENV)/bin/jupytext --sync notebooks/[0-9]*.ipynb

clean:
	rm -rf outputs .pytest_cache .ruff_cache
