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

.PHONY: venv demo test lint notebooks lab clean solutions student course-check docs site-check

# The course (docs/course/exercises.md): solution and student notebooks from the same
# sources, the check that every exercise's check fails in the student version, the site.
COURSE := $(PY) -m tools.course
SOLUTIONS_DIR := build/course/solutions
STUDENT_DIR := build/course/student
SITE_DIR := build/site
SHOTS_DIR ?= runs/site-check/$(shell date -u +%Y%m%dT%H%M%SZ)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@if [ -n "$(TORCH_PIN)" ]; then $(PY) -m pip install --quiet "$(TORCH_PIN)" || echo "note: $(TORCH_PIN) not available, letting pip resolve torch"; fi
	$(PY) -m pip install --quiet -e ".[dev,notebooks,flower,docs]"
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

# The solution notebooks run once, here, with nbmake; --overwrite keeps their outputs in
# $(SOLUTIONS_DIR), where `make docs` takes them instead of executing them again.
# The kernels get matplotlib's inline backend (not Agg) so that the figures are outputs.
INLINE := module://matplotlib_inline.backend_inline
test: venv lint solutions
	MPLBACKEND=Agg $(PY) -m pytest -q -p no:cacheprovider tests
	$(if $(NOTEBOOKS),MPLBACKEND=$(INLINE) $(PY) -m pytest -q -p no:cacheprovider \
		--nbmake --nbmake-timeout=240 --overwrite \
		$(addprefix $(SOLUTIONS_DIR)/,$(notdir $(NOTEBOOKS:.py=.ipynb))))
	MPLBACKEND=Agg $(COURSE) check --jobs 2 $(NOTEBOOKS)

solutions: venv
	$(COURSE) solutions --out $(SOLUTIONS_DIR) $(NOTEBOOKS)

student: venv
	$(COURSE) student --out $(STUDENT_DIR) $(NOTEBOOKS)

course-check: venv
	MPLBACKEND=Agg $(COURSE) check --jobs 2 $(NOTEBOOKS)

# The site (docs/conf.py): Sphinx + myst-nb + numpydoc, warnings are errors. Notebooks
# without a current executed copy in $(SOLUTIONS_DIR) are executed during the build.
docs: venv
	MPLBACKEND=$(INLINE) $(PY) -m sphinx -W --keep-going -q -b html -c docs . $(SITE_DIR)

# Headless Chromium (Debian's chromium + chromium-driver) on the home page and a tutorial.
site-check: venv
	$(COURSE) browser $(SITE_DIR) --shots $(SHOTS_DIR)

lab: venv notebooks
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
