"""``llmaccel distill``: train a compressed model against the original (knowledge distillation).
Its parser and its run, apart from cli.py's other commands (which registers it)."""

from __future__ import annotations

import argparse


def run_distill(args) -> int:
    import dataclasses

    from . import save_quantized
    from .distillation import DistillConfig, check_same_tokenizer, distill
    from .distillation.run import (build_student, check_student_args, finish_student,
                                   history_table, layer_calibration, shakespeare_data)
    from .models import load_model, load_model_or_checkpoint

    check_student_args(args.student is not None, args.drop_layers, args.fake_quant_bits,
                       args.group_size)
    warmup = args.warmup_steps if args.warmup_steps is not None else args.steps // 10
    cfg = DistillConfig(steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len,
                        lr=args.lr, warmup_steps=warmup, loss=args.loss,
                        temperature=args.temperature, alpha=args.alpha, topk=args.topk or None,
                        autocast_bf16=args.bf16, teacher_bf16=args.bf16,
                        eval_every=args.eval_every,
                        eval_windows=args.eval_windows, seed=args.seed,
                        checkpoint_dir=args.checkpoint_dir, resume=args.resume,
                        max_time_s=args.max_time_s)
    teacher, tok = load_model(args.teacher)
    student = None
    if args.student is not None:
        student, student_tok = load_model_or_checkpoint(args.student)
        check_same_tokenizer(student_tok, tok)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    data = shakespeare_data(tok)
    student, prep = build_student(teacher, student, args.drop_layers, args.fake_quant_bits,
                                  args.group_size, calibration=layer_calibration(data.train_ids))
    result = distill(student, teacher, data, cfg)
    finish_student(student, prep)
    meta = {"method": "distill", "source_model": str(args.teacher),
            "student": str(args.student) if args.student is not None
            else f"teacher with {args.drop_layers} layers",
            "fake_quant_bits": args.fake_quant_bits, "pinned_zeros": prep.pinned_zeros,
            "config": {k: v for k, v in dataclasses.asdict(cfg).items()
                       if k not in ("checkpoint_dir", "progress")},
            "teacher_ppl": result.teacher_ppl, "steps": result.steps,
            "stopped_early": result.stopped_early, "history": result.history,
            "text": "train: shakespeare calibration plays; eval: evaluation plays"}
    out = save_quantized(student, args.out, tok, metadata=meta)
    print(history_table(result))
    print(f"→ {out}")
    return 0


def add_distill_parser(sub, model_help: str) -> None:
    """Registers the ``distill`` subcommand on cli.py's subparsers."""
    p = sub.add_parser("distill", help="train a compressed model to match the original "
                       "(knowledge distillation)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Distil a teacher's next-token distributions into a student "
                       "on the Shakespeare\ncalibration plays; held-out perplexity and KL on the "
                       "evaluation plays before,\nduring and after. The result is saved as an "
                       "llmaccel checkpoint.",
                       epilog="""students:
  --student DIR           a pruned checkpoint: its zero weights stay zero while it trains
  --student DIR --fake-quant-bits 4
                          a quantized checkpoint: QuantLinear layers train as fake-quantized
                          layers on their own scales, then are packed back into QuantLinear
  --drop-layers N         a copy of the teacher keeping N of its decoder layers (float): it
                          drops the contiguous block that changes the hidden states of the
                          first training windows least

examples:
  llmaccel prune --method wanda --out wanda50
  llmaccel distill --student wanda50 --steps 500 --out wanda50_kd
  llmaccel quantize --method rtn --group-size 32 --out rtn4
  llmaccel distill --student rtn4 --fake-quant-bits 4 --steps 500 --out rtn4_qat
  llmaccel eval wanda50_kd""")
    p.add_argument("--teacher", default="default", help=model_help)
    p.add_argument("--student", default=None,
                   help="the compressed model to train: a checkpoint or Hugging Face directory")
    p.add_argument("--drop-layers", type=int, default=None, metavar="N",
                   help="instead of --student: the teacher with only N decoder layers")
    p.add_argument("--fake-quant-bits", type=int, choices=(2, 3, 4), default=None,
                   help="train the student's int4 QuantLinear layers through fake "
                   "quantization with this many bits (their own bits: 4 for llmaccel "
                   "quantize) and pack them back at the end")
    p.add_argument("--group-size", type=int, default=None,
                   help="with --fake-quant-bits: the layers' group size, checked (default: "
                   "each layer's own)")
    p.add_argument("--steps", type=int, default=200, help="optimizer steps (default: 200)")
    p.add_argument("--batch-size", type=int, default=8, help="windows per step (default: 8)")
    p.add_argument("--seq-len", type=int, default=256, help="tokens per window (default: 256)")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (default: 1e-4)")
    p.add_argument("--loss", choices=("forward", "reverse", "jsd"), default="forward",
                   help="soft loss: KL(teacher‖student), KL(student‖teacher) or JSD "
                   "(default: %(default)s)")
    p.add_argument("--topk", type=int, default=0,
                   help="keep the teacher's top K log-probabilities per token (and the rest of "
                   "its mass as one outcome), cached per training window, so windows seen "
                   "again skip the teacher (forward KL only; 0: the full distribution, run "
                   "every step) (default: 0)")
    p.add_argument("--bf16", action="store_true",
                   help="bf16 autocast for the student (fp32 master weights) and a bf16 copy "
                   "of the teacher for the training steps (evaluation uses the teacher as "
                   "loaded); ~2x faster on a Zen 4 CPU with AVX-512 BF16")
    p.add_argument("--warmup-steps", type=int, default=None,
                   help="linear warm-up steps before the cosine decay (default: steps // 10)")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature")
    p.add_argument("--alpha", type=float, default=1.0,
                   help="weight of the soft loss; 1 - alpha on the next-token cross entropy "
                   "(default: 1)")
    p.add_argument("--eval-every", type=int, default=100,
                   help="held-out evaluation every N steps, besides before and after")
    p.add_argument("--eval-windows", type=int, default=16,
                   help="held-out windows per evaluation (default: 16)")
    p.add_argument("--seed", type=int, default=0, help="window sampling seed")
    p.add_argument("--checkpoint-dir", default=None,
                   help="write training checkpoints here (resumable)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint in --checkpoint-dir")
    p.add_argument("--max-time-s", type=float, default=None,
                   help="stop after this many seconds (evaluate, checkpoint, save)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's)")
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.set_defaults(run=run_distill)
