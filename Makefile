# The two commands of the README quickstart: `make demo` and `make test`.
# Each creates the virtual environment on first use and installs what it needs:
#   make demo   the core dependencies only (TensorFlow, Keras, NumPy, ...): no PyTorch, JAX or ONNX
#   make test   the core, then the optional backends and the test tools (the `all` extra)
# One stamp per layer, so `make demo` then `make test` adds the extras, and a fresh `make test`
# installs both layers.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORE_STAMP := $(VENV)/.core-stamp
STAMP  := $(VENV)/.installed-stamp
DOCS_STAMP := $(VENV)/.docs-stamp
PYTEST_ARGS ?=

.PHONY: install core demo test lint bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(CORE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $(CORE_STAMP)

$(STAMP): $(CORE_STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e ".[all]"
	touch $(STAMP)

core: $(CORE_STAMP)

install: $(STAMP)

demo: $(CORE_STAMP)
	$(BIN)/cnnlab demo --out demo-output
	@echo "cnnlab is installed in $(VENV): run '. $(VENV)/bin/activate' to put it on your PATH"

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

$(DOCS_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

# The documentation site (user guide, tutorials, API reference) into site/; --strict turns any
# warning, such as a broken link or a page missing from the navigation, into a failure.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) demo-output .pytest_cache site .cache tutorial-output
