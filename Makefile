# llmaccel — from a fresh clone: `make test` (venv + build + tests), `make bench`, `make demo`.
#
#   make venv    .venv with pinned torch and the build/test/bench tools (idempotent, stamp file)
#   make build   editable install of llmaccel; rebuilds the native module when csrc/ changes
#   make test    build, then pytest (if nvcc exists, also checks the CUDA sources were compiled)
#   make data    fetch the default model (SmolLM2-135M-Instruct) and text (Shakespeare) once
#   make demo    compress the default model (RTN, GPTQ, AWQ, w8, SmoothQuant) and report quality,
#                speed and size against fp32 (bench/demo.py; DEMO_ARGS="--windows 64" ...)
#   make prune-demo  prune the default model (magnitude, Wanda, SparseGPT 50 % and 2:4, 2:4 + GPTQ
#                w4, structured 30 %) and report quality and speed the same way
#                (bench/prune_demo.py; PRUNE_ARGS="--quick" for a smoke run)
#   make distill-demo  distil SparseGPT 2:4, GPTQ w3 and 20-layer students from the default model,
#                ~10 min of training each, and report the perplexity recovered (bench/distill_demo.py;
#                DISTILL_ARGS="--quick" for a smoke run)
#   make peers   add llama-cpp-python (a source build, ~10 min) so the demo has a llama.cpp row
#   make bench   bench/bench_gemm.py, full sweep   (BENCH_ARGS="--threads 1 ..." to pass options)
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
DEMO_ARGS ?=
PRUNE_ARGS ?=
# llama.cpp as a peer: PyPI has only the sdist, so pip builds it; CPU only, tuned for this CPU.
LLAMACPP_PKG := llama-cpp-python==0.3.36
# LLAVA (multimodal) and OpenSSL (downloads) are not needed to run a local GGUF.
LLAMACPP_CMAKE := -DGGML_NATIVE=ON -DGGML_CUDA=OFF -DGGML_BLAS=OFF -DGGML_OPENMP=ON \
                  -DLLAVA_BUILD=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
                  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF

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

.PHONY: venv build test data bench demo prune-demo distill-demo peers clean distclean

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

data: build
	$(VPY) -m llmaccel fetch-defaults

demo: data
	$(VPY) bench/demo.py $(DEMO_ARGS)
	@echo
	@echo "Table above; also bench/results/demo.md, demo.json and the plot demo.png"

prune-demo: data
	$(VPY) bench/prune_demo.py $(PRUNE_ARGS)
	@echo
	@echo "Table above; also <date>_prune_cpu_<threads>t.md, .json and the plot .png (path above)"

distill-demo: data
	$(VPY) bench/distill_demo.py $(DISTILL_ARGS)
	@echo
	@echo "Table above; also <date>_distill_cpu_<threads>t.md, .json and the plot .png (path above)"

peers: venv
	CMAKE_ARGS="$(LLAMACPP_CMAKE)" CMAKE_BUILD_PARALLEL_LEVEL=2 \
	  $(VPY) -m pip install $(PIP_FLAGS) $(LLAMACPP_PKG)

clean:
	rm -rf build dist *.egg-info python/*.egg-info .pytest_cache $(BUILD_STAMP)
	rm -f bench/results/bench_gemm.* bench/results/demo.*
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
