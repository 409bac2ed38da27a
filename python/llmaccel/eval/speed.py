"""Speed and memory of a model: prefill and decode tokens/s, weight bytes, peak resident memory.

Decode runs a fixed number of greedy steps (no stop at end-of-sequence) after a prompt, either
through Hugging Face ``generate`` (what users run) or llmaccel's LlamaDecoder (static cache,
fused projections). Each figure is the median of ``repeats`` timed runs after a warm-up.
"""

from __future__ import annotations

import statistics
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class SpeedResult:
    runner: str               # "hf" or "llmaccel"
    batch: int
    prompt_tokens: int
    new_tokens: int
    prefill_tokens_per_s: float
    decode_tokens_per_s: float  # batch × new tokens / decode time
    threads: int

    def as_dict(self) -> dict:
        return asdict(self)


def weight_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer, shared tensors (tied embeddings) counted once."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), t.numel())
        if key not in seen:
            seen.add(key)
            total += t.numel() * t.element_size()
    return total


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


@contextmanager
def peak_rss():
    """Yields a dict that, on exit, holds 'peak_bytes': the highest resident set size of this
    process inside the block (Linux: VmHWM, reset on entry through /proc/self/clear_refs; a
    polling thread where that reset is not allowed)."""
    out: dict = {}
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the high-water mark to the current RSS
        reset = True
    except OSError:
        reset = False
    stop, peak = threading.Event(), [_rss_kib("VmRSS:")]
    if not reset:
        def poll():
            while not stop.wait(0.002):
                peak[0] = max(peak[0], _rss_kib("VmRSS:"))
        th = threading.Thread(target=poll, daemon=True)
        th.start()
    try:
        yield out
    finally:
        if reset:
            peak[0] = _rss_kib("VmHWM:")
        else:
            stop.set()
            th.join()
        out["peak_bytes"] = peak[0] * 1024


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up: first-call allocations, compilation
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


@torch.inference_mode()
def decode_speed(model: nn.Module, prompt: torch.Tensor, new_tokens: int, runner: str = "llmaccel",
                 repeats: int = 3) -> SpeedResult:
    """Prefill and decode throughput for prompt (batch, prompt_tokens) token ids.

    runner 'hf': model.generate (prefill = a 1-token generate; decode = the rest, from the
    medians of separate runs); 'llmaccel': runtime.LlamaDecoder over the same modules, prefill
    and decode timed within each run (LlamaDecoder.timed_generate).
    """
    b, t = prompt.shape
    if new_tokens < 2:
        raise ValueError("new_tokens must be >= 2 (the first token comes from the prefill)")
    if runner == "hf":
        def gen(n):
            model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n,
                           min_new_tokens=n, do_sample=False, pad_token_id=0)
    elif runner == "llmaccel":
        from ..runtime import LlamaDecoder

        dec = LlamaDecoder(model, max_len=t + new_tokens)
        dec.timed_generate(prompt, new_tokens)  # warm-up
        runs = [dec.timed_generate(prompt, new_tokens)[1:] for _ in range(repeats)]
        prefill = statistics.median(r[0] for r in runs)
        decode = statistics.median(r[1] for r in runs)
        return SpeedResult(runner, b, t, new_tokens, b * t / prefill,
                           b * (new_tokens - 1) / decode, torch.get_num_threads())
    else:
        raise ValueError(f"runner must be 'hf' or 'llmaccel', got {runner!r}")
    prefill = _median_time(lambda: gen(1), repeats)
    total = _median_time(lambda: gen(new_tokens), repeats)
    decode = total - prefill  # new_tokens − 1 steps after the prefill's token
    # Medians of separate runs: on a loaded machine the full run can come out no slower than
    # the prefill alone. That is no measurement, not an infinite speed: NaN says so.
    decode_tps = b * (new_tokens - 1) / decode if decode > 0 else float("nan")
    return SpeedResult(runner, b, t, new_tokens, b * t / prefill, decode_tps,
                       torch.get_num_threads())
