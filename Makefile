# llmaccel — from a fresh clone: `make test` (venv + build + tests), `make bench`, `make demo`.
#
#   make venv    .venv with pinned torch and the build/test/bench tools (idempotent, stamp file)
#   make build   editable install of llmaccel; rebuilds the native module when csrc/ changes
#   make test    build, then pytest (if nvcc exists, also checks the CUDA sources were compiled)
#   make bench   bench/bench_gemm.py, full sweep   (BENCH_ARGS="--threads 1 ..." to pass options)
#   make demo    the benchmark with --quick, then where the table and plot are
#   make clean   build outputs and benchmark results (keeps .venv);  make distclean: also .venv
#
# CI runs .ci/run (= make test) with CI=true: pip and pytest then print no progress bars.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
# Pinned exactly: an open range resolves to a multi-GB CUDA build of torch.
TORCH_VERSION ?= 2.13.0
PIP_PKGS := torch==$(TORCH_VERSION) numpy pytest expecttest matplotlib tqdm safetensors \
            scikit-build-core pybind11 transformers accelerate gguf
# LLMACCEL_CUDA=AUTO builds the CUDA sources whenever nvcc is found (no GPU needed).
export LLMACCEL_CUDA ?= AUTO
BENCH_ARGS ?=

# nvcc may be installed without being on PATH: put the toolkit's bin/ first so CMake finds it.
CUDA_BIN := $(firstword $(wildcard /usr/local/cuda-13.0/bin/nvcc /usr/local/cuda/bin/nvcc))
ifneq ($(CUDA_BIN),)
export PATH := $(dir $(CUDA_BIN)):$(PATH)
endif
HAVE_NVCC := $(if $(CUDA_BIN),1,$(shell command -v nvcc >/dev/null 2>&1 && echo 1))

ifeq ($(CI),true)
PIP_FLAGS := --progress-bar off
PYTEST_FLAGS := -p no:cacheprovider
else
PIP_FLAGS :=
PYTEST_FLAGS :=
endif

VENV_STAMP := $(VENV)/.llmaccel-venv.stamp
BUILD_STAMP := $(VENV)/.llmaccel-build.stamp
NATIVE_SRCS := $(shell find csrc -type f 2>/dev/null) CMakeLists.txt pyproject.toml

.PHONY: venv build test bench demo clean distclean

venv: $(VENV_STAMP)

# Depends on this Makefile so that a changed package list is installed; pip skips what is there.
$(VENV_STAMP): Makefile
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install $(PIP_FLAGS) --upgrade pip
	$(VPY) -m pip install $(PIP_FLAGS) $(PIP_PKGS)
	@# scikit-build-core needs CMake >= 3.22 and Ninja; use the system's when present.
	@v=$$(cmake --version 2>/dev/null | sed -n '1s/^cmake version //p'); \
	if [ -z "$$v" ] || [ "$$(printf '%s\n' 3.22 "$$v" | sort -V | head -n1)" != 3.22 ]; then \
	  $(VPY) -m pip install $(PIP_FLAGS) cmake; fi
	@command -v ninja >/dev/null 2>&1 || $(VPY) -m pip install $(PIP_FLAGS) ninja
	@touch $@

build: $(BUILD_STAMP)

# The native module lives in the venv (editable install), so the stamp does too: a new venv
# rebuilds. Python sources need no rebuild: the editable install imports them from python/.
$(BUILD_STAMP): $(NATIVE_SRCS) | $(VENV_STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VPY) -m pip install $(PIP_FLAGS) --no-build-isolation -e .
	@touch $@

test: build
	@if [ -n "$(HAVE_NVCC)" ]; then \
	  $(VPY) -c "import llmaccel, sys; info = llmaccel.cuda_info(); print('llmaccel CUDA:', info); \
	    sys.exit(None if info['built'] else 'nvcc is present but llmaccel was built without CUDA')"; \
	fi
	@# pytest exits 5 when it collects no test: say so rather than fail an empty suite.
	@rc=0; $(VPY) -m pytest $(PYTEST_FLAGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests"; exit 0; fi; exit $$rc

bench: build
	$(VPY) bench/bench_gemm.py $(BENCH_ARGS)

demo: build
	$(VPY) bench/bench_gemm.py --quick $(BENCH_ARGS)
	@echo
	@echo "Table above; JSON: bench/results/bench_gemm.json; plot: bench/results/bench_gemm.png"

clean:
	rm -rf build dist *.egg-info python/*.egg-info .pytest_cache $(BUILD_STAMP)
	rm -f bench/results/*.json bench/results/*.png
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
