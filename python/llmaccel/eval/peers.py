"""Peer baseline: llama.cpp's CPU decode speed on the same GGUF, prompt and length as ours.

Someone who wants a small quantized model fast on a CPU would reach for llama.cpp (here through
the `llama-cpp-python` bindings), so our w4 decode tok/s only means something next to its. This
module measures, at batch 1 and a fixed thread count:

- prefill: one llama_decode of the whole prompt (tokens / seconds);
- decode: exactly `new_tokens` greedy steps, one token per llama_decode, the next token being the
  argmax of the last logits (tokens / seconds). EOS does not stop it, so every run does the same
  work whatever the text.

Timings are time.perf_counter around the calls, after one untimed warm-up run; the figures are
medians over repeats. The per-step Python overhead of the bindings (~tens of µs) is included:
it is what a Python user of llama.cpp pays, and small next to a step of a 30-layer model.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

INSTALL_HINT = (
    'CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_CUDA=OFF -DGGML_BLAS=OFF -DGGML_OPENMP=ON '
    '-DLLAVA_BUILD=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF '
    '-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF" '
    "CMAKE_BUILD_PARALLEL_LEVEL=2 MAKEFLAGS=-j2 pip install llama-cpp-python==0.3.36"
)


def llamacpp_available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def _import_llama_cpp():
    try:
        import llama_cpp
    except ImportError as e:
        # PyPI ships it as an sdist only, so the install builds llama.cpp: say how, once.
        raise RuntimeError(
            "llama.cpp peer baseline needs llama-cpp-python (a source build, a few minutes): "
            + INSTALL_HINT) from e
    return llama_cpp


def llamacpp_decode_speed(gguf_path: str | Path, prompt_ids: list[int], new_tokens: int,
                          threads: int = 2, repeats: int = 3,
                          flash_attn: bool = False) -> dict[str, Any]:
    """llama.cpp prefill and greedy decode speed on gguf_path, batch 1, medians over repeats.

    prompt_ids: token ids in the GGUF's own vocabulary (e.g. from Llama.tokenize), at least one.
    flash_attn: the bindings' default (off) unless asked; llama.cpp's own CLI picks it itself.
    """
    llama_cpp = _import_llama_cpp()
    import numpy as np

    if not prompt_ids:
        raise ValueError("prompt_ids must hold at least one token")
    if new_tokens < 1 or repeats < 1:
        raise ValueError(f"new_tokens and repeats must be >= 1, got {new_tokens}, {repeats}")
    path = Path(gguf_path)
    n_prompt = len(prompt_ids)
    llm = llama_cpp.Llama(
        model_path=str(path), n_threads=threads, n_threads_batch=threads,
        n_ctx=n_prompt + new_tokens + 16,
        # The whole prompt in one llama_decode, so prefill is one batched pass as in ours.
        n_batch=max(512, n_prompt), n_ubatch=max(512, n_prompt),
        flash_attn=flash_attn, verbose=False)
    n_vocab = llm.n_vocab()
    if max(prompt_ids) >= n_vocab or min(prompt_ids) < 0:
        raise ValueError(f"prompt_ids outside the GGUF's vocabulary of {n_vocab}")

    def next_token() -> int:
        # Logits of the last evaluated position only (logits_all is off): a view, no copy.
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1),
                                       shape=(n_vocab,))
        return int(logits.argmax())

    def run() -> tuple[float, float]:
        llm.reset()  # next eval starts at position 0 and drops the old KV cells
        t0 = time.perf_counter()
        llm.eval(prompt_ids)
        tok = next_token()
        t1 = time.perf_counter()
        for _ in range(new_tokens):
            llm.eval([tok])
            tok = next_token()
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1

    try:
        run()  # warm-up: page in the mmapped weights, spin up the OpenMP pool
        times = [run() for _ in range(repeats)]
    finally:
        llm.close()
    prefill_s = statistics.median(t[0] for t in times)
    decode_s = statistics.median(t[1] for t in times)
    return {
        "prefill_tokens_per_s": n_prompt / prefill_s,
        "decode_tokens_per_s": new_tokens / decode_s,
        "threads": threads,
        "new_tokens": new_tokens,
        "prompt_tokens": n_prompt,
        "llama_cpp_version": llama_cpp.__version__,
        "gguf": path.name,
    }
