"""Tables from bench/gpu/trace_probe.cu's records: where one GEMM call's time goes.

    python3 bench/gpu/trace_report.py OUT [--md OUT/trace_report.md]

Per case (OUT/trace_<case>.json + .bin, the record layout of csrc/cuda/kernel_trace.cuh):

- the call's timeline in µs from the stamp written right before it: the first block's entry,
  the first ring slot landing, the blocks' streams, the K reduction (K-slice: the last block
  of each tile range adds the chunks), the last exit, and the stamp right after;
- per ring stage, from the SM's cycle counter (converted with the clock each block measured
  between its entry and exit): how long the consumers wait for a slot's data and how long they
  work on it, how long the producer waits for a free slot and how long its copy instructions
  hold it. Medians and 90th percentiles over the blocks' stages after the ring's first fill.

Standard library only (runs beside the probe on the GPU machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from array import array
from pathlib import Path

# csrc/cuda/kernel_trace.cuh
SM, ENTER, ENTER_CLK, FIRST_FULL, CONSUMED, JOINED, EXIT, EXIT_CLK, LAST = range(9)
WAIT_FULL, FULL, ISSUED, RELEASED, WAIT_EMPTY, EMPTY, W_COPIED, X_COPIED = range(8)
WARMUP_STAGES = 16  # the ring's first fill: no slot to wait for yet


def load(json_path: Path) -> tuple[dict, list[list[int]], list[list[list[int]]]]:
    """The case, and per block its head words and its stages' words."""
    meta = json.loads(json_path.read_text())
    words = array("Q")
    words.frombytes(json_path.with_suffix(".bin").read_bytes())
    if sys.byteorder != "little":
        words.byteswap()
    hw, sw, stages = meta["head_words"], meta["stage_words"], meta["stages"]
    rec = hw + stages * sw
    if len(words) != meta["blocks"] * rec:
        raise ValueError(f"{json_path.name}: {len(words)} words, expected "
                         f"{meta['blocks']} blocks × {rec}")
    heads, stage_rows = [], []
    for b in range(meta["blocks"]):
        r = words[b * rec:(b + 1) * rec]
        if not r[SM]:
            continue  # a block index past the grid, or one that never ran
        heads.append(list(r[:hw]))
        stage_rows.append([list(r[hw + i * sw:hw + (i + 1) * sw]) for i in range(stages)])
    return meta, heads, stage_rows


def _q(values: list[float], frac: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(frac * len(v)))] if v else float("nan")


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def clock_ghz(heads: list[list[int]]) -> float:
    """SM cycles per ns, from each block's entry and exit in both clocks (the longer blocks:
    %globaltimer may tick coarsely)."""
    pairs = [(h[EXIT_CLK] - h[ENTER_CLK], h[EXIT] - h[ENTER]) for h in heads
             if h[EXIT] and h[EXIT_CLK] and h[EXIT] > h[ENTER]]
    pairs.sort(key=lambda p: p[1])
    longest = pairs[len(pairs) // 2:] or pairs
    return _med([c / t for c, t in longest]) if longest else float("nan")


def timeline(meta: dict, heads: list[list[int]]) -> dict:
    """The call's phases in µs (see the module docstring)."""
    t0 = meta["stamp_before_ns"]
    us = lambda ns: ns / 1000.0  # noqa: E731
    enter = [h[ENTER] for h in heads]
    first = [h[FIRST_FULL] - h[ENTER] for h in heads if h[FIRST_FULL]]
    stream = [h[CONSUMED] - h[FIRST_FULL] for h in heads if h[CONSUMED] and h[FIRST_FULL]]
    exits = [h[EXIT] for h in heads if h[EXIT]]
    last = [h[EXIT] - h[JOINED] for h in heads if h[LAST] and h[JOINED] and h[EXIT]]
    rest = [h[EXIT] - h[JOINED] for h in heads if not h[LAST] and h[JOINED] and h[EXIT]]
    out = {
        "blocks": len(heads),
        "sms_used": len({h[SM] for h in heads}),
        "launch_us": us(min(enter) - t0) if enter and t0 else float("nan"),
        "enter_spread_us": us(max(enter) - min(enter)) if enter else float("nan"),
        "enter_p90_us": us(_q([e - min(enter) for e in enter], 0.9)) if enter else float("nan"),
        "first_data_us": us(_med(first)),
        "stream_us": us(_med(stream)),
        "stream_max_us": us(max(stream)) if stream else float("nan"),
        "reduce_last_us": us(_med(last)),
        "exit_rest_us": us(_med(rest)),
        "exit_spread_us": us(max(exits) - _med(exits)) if exits else float("nan"),
        "last_exit_us": us(max(exits) - t0) if exits and t0 else float("nan"),
        "after_us": us(meta["stamp_after_ns"] - max(exits)) if exits else float("nan"),
        "stamped_us": us(meta["stamp_after_ns"] - t0) if t0 else float("nan"),
        "ranges": sum(1 for h in heads if h[LAST]),
    }
    return out


def stages(stage_rows: list[list[list[int]]], ghz: float) -> dict:
    """Per-stage waits and work in ns (medians, 90th percentiles), after the first fill."""
    waits, work, prev, period, slot_wait, w_hold, x_period = ([] for _ in range(7))
    for rows in stage_rows:
        used = [r for r in rows if r[WAIT_FULL] and r[FULL]]
        skip = min(WARMUP_STAGES, len(used) // 4)
        for i, r in enumerate(used):
            if i < skip:
                continue
            waits.append(r[FULL] - r[WAIT_FULL])
            done = r[ISSUED] or r[RELEASED]  # wgmma: committed; K-slice: released after the MMAs
            if done:
                work.append(done - r[FULL])
            if r[ISSUED] and r[RELEASED]:
                prev.append(r[RELEASED] - r[ISSUED])
            if i + 1 < len(used):
                period.append(used[i + 1][WAIT_FULL] - r[WAIT_FULL])
        groups = [r for r in rows if r[WAIT_EMPTY] and r[EMPTY]]
        for i, r in enumerate(groups):
            if i < min(WARMUP_STAGES, len(groups) // 4):
                continue
            slot_wait.append(r[EMPTY] - r[WAIT_EMPTY])
            if r[W_COPIED]:
                w_hold.append(r[W_COPIED] - r[EMPTY])
        xs = [r[X_COPIED] for r in rows if r[X_COPIED]]
        x_period += [b - a for a, b in zip(xs[skip:], xs[skip + 1:])]
    ns = lambda c: c / ghz  # noqa: E731
    stat = lambda v: (ns(_med(v)), ns(_q(v, 0.9)), len(v))  # noqa: E731
    return {"consumer_wait_data": stat(waits), "consumer_work": stat(work),
            "consumer_wait_prev_mma": stat(prev), "stage_period": stat(period),
            "producer_wait_slot": stat(slot_wait), "producer_w_copy_hold": stat(w_hold),
            "x_copy_period": stat(x_period)}


def case_report(json_path: Path) -> tuple[dict, str]:
    meta, heads, stage_rows = load(json_path)
    if not heads:
        return {"name": meta["name"]}, f"## {meta['name']}\n\nno records\n"
    ghz = clock_ghz(heads)
    tl = timeline(meta, heads)
    st = stages(stage_rows, ghz)
    plan = {k: meta[k] for k in ("x_rows", "splits", "cluster", "w_warps", "x_warp", "x_pieces",
                                 "x_tma") if k in meta}
    mb = (meta["weight_bytes"] + meta["scale_bytes"]) / 1e6
    lines = [
        f"## {meta['name']} ({meta['kind']}, M = {meta['m']}, {meta['k']}→{meta['n']})", "",
        f"- event time {meta['event_us']:.2f} µs with the trace off, "
        f"{meta['event_us_traced']:.2f} traced; a plain read of the same {mb:.1f} MB "
        f"{meta['read_floor_us']:.2f} µs, an empty kernel {meta['empty_kernel_us']:.2f} µs",
        f"- {tl['blocks']} blocks on {tl['sms_used']} SMs"
        + (f", {tl['ranges']} tile ranges (K-slice)" if tl["ranges"] else "")
        + (f"; plan {plan}" if plan else "") + f"; SM clock {ghz:.3f} GHz",
        f"- timeline (µs after the stamp before the call): first block in at "
        f"{tl['launch_us']:.2f} (all in by +{tl['enter_spread_us']:.2f}, 90 % by "
        f"+{tl['enter_p90_us']:.2f}); first slot lands {tl['first_data_us']:.2f} after a block's "
        f"entry (median); a block streams {tl['stream_us']:.2f} (median, longest "
        f"{tl['stream_max_us']:.2f}); last exit at {tl['last_exit_us']:.2f}, "
        f"{tl['exit_spread_us']:.2f} after the median exit; the stamp after the call at "
        f"{tl['stamped_us']:.2f} (+{tl['after_us']:.2f})",
    ]
    if tl["ranges"]:
        lines.append(f"- K reduction: the last block of a range spends {tl['reduce_last_us']:.2f}"
                     f" µs from its barrier to its exit (the others {tl['exit_rest_us']:.2f})")
    lines += ["", "| per stage, ns | median | p90 | n |", "|---|---:|---:|---:|"]
    for key, (med, p90, n) in st.items():
        lines.append(f"| {key.replace('_', ' ')} | {med:.0f} | {p90:.0f} | {n} |")
    summary = {"name": meta["name"], "event_us": meta["event_us"],
               "read_floor_us": meta["read_floor_us"], "empty_us": meta["empty_kernel_us"],
               **{k: tl[k] for k in ("launch_us", "first_data_us", "stream_us", "exit_spread_us",
                                     "after_us")},
               "wait_data_ns": st["consumer_wait_data"][0], "work_ns": st["consumer_work"][0],
               "wait_slot_ns": st["producer_wait_slot"][0], "period_ns": st["stage_period"][0]}
    return summary, "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, help="the probe's output folder")
    ap.add_argument("--md", type=Path, help="also write the report here")
    args = ap.parse_args(argv)
    cases = sorted(args.out.glob("trace_*.json"))
    if not cases:
        print(f"no trace_*.json in {args.out}", file=sys.stderr)
        return 1
    summaries, sections = zip(*(case_report(p) for p in cases))
    cols = ["event_us", "read_floor_us", "empty_us", "launch_us", "first_data_us", "stream_us",
            "exit_spread_us", "after_us", "wait_data_ns", "work_ns", "wait_slot_ns", "period_ns"]
    head = ("| case | event µs | read floor µs | empty µs | launch µs | 1st data µs | stream µs "
            "| exit spread µs | after µs | wait data ns | work ns | wait slot ns | stage ns |")
    table = [head, "|---" + "|---:" * len(cols) + "|"]
    for s in summaries:
        table.append(f"| {s['name']} | " + " | ".join(
            f"{s[c]:.2f}" if c.endswith("us") else f"{s[c]:.0f}" for c in cols if c in s) + " |")
    text = "# Kernel traces\n\n" + "\n".join(table) + "\n\n" + "\n".join(sections)
    print(text)
    if args.md:
        tmp = args.md.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(args.md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
