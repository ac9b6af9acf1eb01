# Two commands a newcomer needs (see README):
#   make demo   -- create .venv, install, run the main demo
#   make test   -- create .venv, install with dev extras, lint and run the tests
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The project keeps an open torch range; on a CPU-only machine we install the CPU build first
# so that pip does not pull a multi-GB CUDA wheel. Override with `make TORCH_PIN= ...`.
TORCH_PIN ?= torch==2.13.0

NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.py))

.PHONY: venv demo test lint notebooks lab clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@if [ -n "$(TORCH_PIN)" ]; then $(PY) -m pip install --quiet "$(TORCH_PIN)" || echo "note: $(TORCH_PIN) not available, letting pip resolve torch"; fi
	$(PY) -m pip install --quiet -e ".[dev,notebooks,flower]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) -m fl_sim demo --output-dir runs/demo

lint: venv
	$(PY) -m ruff check .

# Notebooks live in git as jupytext percent-format .py files (no outputs); they are
# paired to .ipynb here and executed by nbmake as part of the test run.
notebooks: venv
	@if [ -n "$(NOTEBOOKS)" ]; then $(VENV)/bin/jupytext --quiet --to ipynb $(NOTEBOOKS); fi

test: venv lint notebooks
	MPLBACKEND=Agg $(PY) -m pytest -q -p no:cacheprovider tests \
		$(if $(NOTEBOOKS),--nbmake --nbmake-timeout=240 $(NOTEBOOKS:.py=.ipynb))

lab: venv notebooks
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
