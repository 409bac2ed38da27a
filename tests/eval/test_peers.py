"""llama.cpp peer baseline: the error path without llama-cpp-python, the speed dict with it."""

from __future__ import annotations

import builtins

import pytest

from llmaccel.data.cache import cache_dir
from llmaccel.eval import peers

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_missing_llama_cpp_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_llama_cpp(name, *args, **kwargs):
        if name == "llama_cpp" or name.startswith("llama_cpp."):
            raise ImportError("No module named 'llama_cpp'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_llama_cpp)
    assert peers.llamacpp_available() is False
    with pytest.raises(RuntimeError, match="pip install llama-cpp-python"):
        peers.llamacpp_decode_speed("unused.gguf", [1, 2, 3], new_tokens=4)


def test_decode_speed_on_the_default_gguf():
    llama_cpp = pytest.importorskip("llama_cpp")
    # Never download here: the default GGUF is only used when a previous run left it cached.
    path = cache_dir() / "models" / GGUF
    if not path.is_file():
        pytest.skip(f"{path} not cached")
    tok = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    ids = tok.tokenize(b"To be, or not to be, that is the question:", add_bos=False)
    r = peers.llamacpp_decode_speed(path, ids, new_tokens=8, threads=2, repeats=1)
    assert peers.llamacpp_available()
    assert r["prefill_tokens_per_s"] > 0 and r["decode_tokens_per_s"] > 0
    assert (r["new_tokens"], r["prompt_tokens"], r["threads"]) == (8, len(ids), 2)
    assert r["gguf"] == GGUF and r["llama_cpp_version"] == llama_cpp.__version__
