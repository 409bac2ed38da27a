"""The ``llmaccel`` command.

    llmaccel fetch-defaults            download and convert the default model and text (once)
    llmaccel perplexity [--model M]    perplexity of a model on the held-out Shakespeare plays
"""

from __future__ import annotations

import argparse
import sys


def _fetch_defaults(args) -> int:
    from .data import fetch_shakespeare
    from .models import default_model_dir

    print(f"text:  {fetch_shakespeare()}")
    print(f"model: {default_model_dir()}")
    return 0


def _perplexity(args) -> int:
    from .data import shakespeare_text
    from .eval import perplexity
    from .models import load_model

    model, tok = load_model(args.model, dtype=args.dtype)
    ids = tok(shakespeare_text("evaluation"), return_tensors="pt").input_ids[0]
    print(f"{args.model}: {perplexity(model, ids, args.window, args.max_windows)} "
          f"on the evaluation plays")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmaccel", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fetch-defaults", help="download and convert the default model and text "
                       "into $LLMACCEL_CACHE (default ~/.cache/llmaccel); safe to repeat")
    p.set_defaults(run=_fetch_defaults)
    p = sub.add_parser("perplexity", help="perplexity on the held-out plays (GPTQ convention: "
                       "non-overlapping windows)")
    p.add_argument("--model", default="default",
                   help="'default', a Hugging Face model directory, or a .gguf file")
    p.add_argument("--window", type=int, default=512, help="tokens per window (default 512)")
    p.add_argument("--max-windows", type=int, default=None,
                   help="score only the first N windows (default: all)")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.set_defaults(run=_perplexity)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (RuntimeError, FileNotFoundError, ValueError) as e:
        print(f"llmaccel {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
