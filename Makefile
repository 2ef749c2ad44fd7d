# Two commands from a clone to a running project; each builds its environment on first use
# from the project's own requirements files (Python 3.8-3.11: MXNet 1.9.1 needs numpy<1.24).
#   make demo    the main job: a real search on the embedded digits (~5 min on 2 cores)
#   make test    the whole test suite (~8 min on 2 cores, two pytest processes); make test-fast skips the slow tests
PYTHON ?= $(shell for c in python3.11 python3.10 python3.9 python3.8 python3; do \
	command -v $$c >/dev/null 2>&1 && $$c -c 'import sys; sys.exit(not (3, 8) <= sys.version_info[:2] <= (3, 11))' \
	&& echo $$c && break; done)
VENV ?= .venv
ORT_VENV ?= .venv-ort
TORCH_VENV ?= .venv-torch
PY := $(VENV)/bin/python
ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test test-fast env torch-env clean

demo: $(VENV)/.installed
	$(PY) test.py $(ARGS)

TEST_ENV = FBNET_ORT_PYTHON=$(CURDIR)/$(ORT_VENV)/bin/python \
	FBNET_TORCH_PYTHON=$(CURDIR)/$(TORCH_VENV)/bin/python

test: $(VENV)/.installed $(ORT_VENV)/.installed $(TORCH_VENV)/.installed
	$(TEST_ENV) $(PY) -m pytest -n 2 $(PYTEST_ARGS)

test-fast: $(VENV)/.installed $(ORT_VENV)/.installed $(TORCH_VENV)/.installed
	$(TEST_ENV) $(PY) -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

env: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: need Python 3.8-3.11 (MXNet 1.9.1 needs numpy<1.24); set PYTHON=..." >&2; exit 1; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -c 'import mxnet, numpy; print("mxnet", mxnet.__version__, "numpy", numpy.__version__)'
	touch $@

# onnxruntime needs numpy>=1.24, which MXNet 1.9.1 cannot import: a second environment
$(ORT_VENV)/.installed: requirements-onnxruntime.txt
	@test -n "$(PYTHON)" || { echo "error: need Python 3.8-3.11; set PYTHON=..." >&2; exit 1; }
	rm -rf $(ORT_VENV)
	$(PYTHON) -m venv $(ORT_VENV)
	$(ORT_VENV)/bin/python -m pip install -q --upgrade pip
	$(ORT_VENV)/bin/python -m pip install -q -r requirements-onnxruntime.txt
	touch $@

# the PyTorch reference of the benchmark (bench/bench_vs_torch.py; a test checks it)
torch-env: $(TORCH_VENV)/.installed

$(TORCH_VENV)/.installed: requirements-torch.txt
	@test -n "$(PYTHON)" || { echo "error: need Python 3.8-3.11; set PYTHON=..." >&2; exit 1; }
	rm -rf $(TORCH_VENV)
	$(PYTHON) -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/python -m pip install -q -r requirements-torch.txt
	$(TORCH_VENV)/bin/python -c 'import torch; print("torch", torch.__version__)'
	touch $@

clean:
	rm -rf $(VENV) $(ORT_VENV) $(TORCH_VENV)
