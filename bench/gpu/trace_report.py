"""Tables from bench/gpu/trace_probe.cu's records: where one GEMM call's time goes.

    python3 bench/gpu/trace_report.py OUT [--md OUT/trace_report.md]
    python3 bench/gpu/trace_report.py --compare RUNS   # RUNS/<run>/trace_*.json: event µs side by side

Per case (OUT/trace_<case>.json + .bin, the record layout of csrc/cuda/kernel_trace.cuh):

- the call's timeline: the first block's entry after the stamp written right before the call
  (%globaltimer, as fine as its step, which the probe measures), then within each block in SM
  cycles: its first ring slot landing, its stream, the K reduction (K-slice: the last block of a
  tile range adds the chunks), and the exits' spread and the stamp after the call;
- per ring stage, from the SM's cycle counter (converted at the clock the probe measured): how
  long the consumers wait for a slot's data and work on it, how long they wait for an older
  wgmma group, how long the producer waits for a free slot and its weight copy instruction
  holds it, and how often a copy group's x lands. Medians and 90th percentiles over the blocks'
  stages after the ring's first fill.

A control build of the probe (no trace points) writes the same JSON without records: its event
times are the library's kernels', for comparison with the traced build's.

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
(SM, ENTER, ENTER_CLK, FIRST_FULL, CONSUMED, JOINED, EXIT, EXIT_CLK, LAST, FIRST_FULL_CLK,
 CONSUMED_CLK, JOINED_CLK, RING, GROUP) = range(14)
WAIT_FULL, FULL, ISSUED, RELEASED, WAIT_EMPTY, EMPTY, W_COPIED, X_COPIED = range(8)
NAN = float("nan")


def load(json_path: Path) -> tuple[dict, list[list[int]], list[list[list[int]]]]:
    """The case, and per block that ran its head words and its stages' words."""
    meta = json.loads(json_path.read_text())
    if not meta["blocks"]:
        return meta, [], []
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
    return v[min(len(v) - 1, int(frac * len(v)))] if v else NAN


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else NAN


def clock_ghz(meta: dict, heads: list[list[int]]) -> float:
    """SM cycles per ns: the probe's calibration, else each block's entry and exit in both
    clocks (the longer half of the blocks: %globaltimer may step coarsely)."""
    if meta.get("sm_ghz", 0) > 0:
        return meta["sm_ghz"]
    pairs = sorted(((h[EXIT_CLK] - h[ENTER_CLK], h[EXIT] - h[ENTER]) for h in heads
                    if h[EXIT] and h[EXIT_CLK] and h[EXIT] > h[ENTER]), key=lambda p: p[1])
    longest = pairs[len(pairs) // 2:] or pairs
    return _med([c / t for c, t in longest]) if longest else NAN


def late_blocks(heads: list[list[int]]) -> int:
    """Blocks that entered after another block on their SM had exited: a later wave's (the grid
    did not fit at once), as the K-slice plan's passes are meant to avoid at M = 9-16."""
    by_sm: dict[int, list[list[int]]] = {}
    for h in heads:
        if h[SM] and h[EXIT]:
            by_sm.setdefault(h[SM], []).append(h)
    late = 0
    for blocks in by_sm.values():
        blocks.sort(key=lambda h: h[ENTER])
        first_exit = None
        for h in blocks:
            if first_exit is not None and h[ENTER] > first_exit:
                late += 1
            first_exit = h[EXIT] if first_exit is None else min(first_exit, h[EXIT])
    return late


def timeline(meta: dict, heads: list[list[int]], ghz: float) -> dict:
    """The call's phases in µs (see the module docstring)."""
    t0 = meta["stamp_before_ns"]
    us_ns = lambda ns: ns / 1000.0  # noqa: E731
    us_clk = lambda c: c / ghz / 1000.0  # noqa: E731
    enter = [h[ENTER] for h in heads]
    exits = [h[EXIT] for h in heads if h[EXIT]]
    first = [h[FIRST_FULL_CLK] - h[ENTER_CLK] for h in heads if h[FIRST_FULL_CLK]]
    stream = [h[CONSUMED_CLK] - h[FIRST_FULL_CLK] for h in heads
              if h[CONSUMED_CLK] and h[FIRST_FULL_CLK]]
    last = [h[EXIT_CLK] - h[JOINED_CLK] for h in heads if h[LAST] and h[JOINED_CLK]]
    rest = [h[EXIT_CLK] - h[JOINED_CLK] for h in heads if not h[LAST] and h[JOINED_CLK]]
    return {
        "blocks": len(heads),
        "sms_used": len({h[SM] for h in heads}),
        "late_blocks": late_blocks(heads),
        "launch_us": us_ns(min(enter) - t0) if enter and t0 else NAN,
        "enter_spread_us": us_ns(max(enter) - min(enter)) if enter else NAN,
        "enter_p90_us": us_ns(_q([e - min(enter) for e in enter], 0.9)) if enter else NAN,
        "first_data_us": us_clk(_med(first)),
        "stream_us": us_clk(_med(stream)),
        "stream_max_us": us_clk(max(stream)) if stream else NAN,
        "reduce_last_us": us_clk(_med(last)),
        "exit_rest_us": us_clk(_med(rest)),
        "exit_spread_us": us_ns(max(exits) - _med(exits)) if exits else NAN,
        "last_exit_us": us_ns(max(exits) - t0) if exits and t0 else NAN,
        "after_us": us_ns(meta["stamp_after_ns"] - max(exits)) if exits else NAN,
        "stamped_us": us_ns(meta["stamp_after_ns"] - t0) if t0 else NAN,
        "ranges": sum(1 for h in heads if h[LAST]),
        "ring": _med([h[RING] for h in heads if h[RING]]),
        "group": _med([h[GROUP] for h in heads if h[GROUP]]),
    }


def stages(heads: list[list[int]], stage_rows: list[list[list[int]]], ghz: float) -> dict:
    """Per-stage waits and work in ns (medians, 90th percentiles), after the ring's first fill
    (the producers stamp nothing before it)."""
    waits, work, prev, period, slot_wait, w_hold, x_period = ([] for _ in range(7))
    for h, rows in zip(heads, stage_rows):
        used = [(i, r) for i, r in enumerate(rows) if r[WAIT_FULL] and r[FULL]]
        skip = h[RING] or min(16, len(used) // 4)
        for n, (i, r) in enumerate(used):
            if i < skip:
                continue
            waits.append(r[FULL] - r[WAIT_FULL])
            done = r[ISSUED] or r[RELEASED]  # wgmma: committed; else released after the MMAs
            if done:
                work.append(done - r[FULL])
            if r[ISSUED] and r[RELEASED]:
                prev.append(r[RELEASED] - r[ISSUED])
            if n + 1 < len(used):
                period.append((used[n + 1][1][WAIT_FULL] - r[WAIT_FULL]) / (used[n + 1][0] - i))
        starts = [(i, r) for i, r in enumerate(rows) if r[WAIT_EMPTY] and r[EMPTY]]
        for i, r in starts:
            slot_wait.append(r[EMPTY] - r[WAIT_EMPTY])
            if r[W_COPIED]:
                w_hold.append(r[W_COPIED] - r[EMPTY])
        # x per stage between the starts of copy groups (a group's stages get their x at once)
        xs = [(i, r[X_COPIED]) for i, r in starts if r[X_COPIED]]
        x_period += [(b - a) / (j - i) for (i, a), (j, b) in zip(xs, xs[1:])]
    ns = lambda c: c / ghz  # noqa: E731
    stat = lambda v: (ns(_med(v)), ns(_q(v, 0.9)), len(v))  # noqa: E731
    return {"consumer wait for data": stat(waits), "consumer work (fill, issue)": stat(work),
            "consumer wait for an older group": stat(prev), "stage period": stat(period),
            "producer wait for a free slot": stat(slot_wait),
            "producer weight copy instruction": stat(w_hold),
            "x (K-slice: scales) per stage": stat(x_period)}


def reading(st: dict) -> str:
    """One line on what sets the stage, from the per-stage medians (ns)."""
    period = st["stage period"][0]
    if not period == period or period <= 0:
        return ""
    share = {k: st[k][0] / period for k in ("consumer wait for data", "consumer work (fill, issue)",
                                            "consumer wait for an older group")
             if st[k][0] == st[k][0]}
    if not share:
        return ""
    top = max(share, key=share.get)
    why = {"consumer wait for data": "the copies (the producer's issue, or HBM) set the stage",
           "consumer work (fill, issue)": "the consumers' own loads, dequantization and issue set "
                                          "the stage",
           "consumer wait for an older group": "the tensor cores' latency sets the stage (the "
                                               "LLMACCEL_WGMMA_DEPTH / _CHAINS runs test that)"}
    parts = ", ".join(f"{k} {100 * v:.0f} %" for k, v in share.items())
    return f"- reading: of a {period:.0f} ns stage, {parts}: {why[top]}"


def case_report(json_path: Path) -> tuple[dict, str]:
    meta, heads, stage_rows = load(json_path)
    mb = (meta["weight_bytes"] + meta["scale_bytes"]) / 1e6
    warm = meta.get("read_warm_us", NAN)
    lines = [
        f"## {meta['name']} ({meta['kind']}, M = {meta['m']}, {meta['k']}→{meta['n']})", "",
        f"- event time {meta['event_us']:.2f} µs ({meta['event_us_traced']:.2f} in the stamped "
        f"call; {'trace points compiled in' if meta.get('traced', True) else 'control build, no trace points'}); "
        f"a plain read of the same {mb:.1f} MB {meta['read_floor_us']:.2f} µs after the flush "
        f"({warm:.2f} without it), an empty kernel {meta['empty_kernel_us']:.2f} µs",
    ]
    if warm == warm and warm >= 0.9 * meta["read_floor_us"]:
        lines.append("- **the read is as fast without the flush as with it: the flush does not "
                     "empty L2 of these bytes, and no time here is a cold one**")
    summary = {"name": meta["name"], "event_us": meta["event_us"],
               "read_floor_us": meta["read_floor_us"], "empty_us": meta["empty_kernel_us"]}
    if not heads:
        return summary, "\n".join(lines + ["- no records"]) + "\n"
    ghz = clock_ghz(meta, heads)
    tl = timeline(meta, heads, ghz)
    st = stages(heads, stage_rows, ghz)
    plan = {k: meta[k] for k in ("x_rows", "splits", "cluster", "w_warps", "x_warp", "x_pieces",
                                 "x_tma") if k in meta}
    lines += [
        f"- {tl['blocks']} blocks on {tl['sms_used']} SMs ({tl['late_blocks']} of them entered "
        f"after a block on their SM had exited: a later wave), rings of {tl['ring']:.0f} slots "
        f"(copy groups of {tl['group']:.0f})"
        + (f", {tl['ranges']} tile ranges (K-slice)" if tl["ranges"] else "")
        + (f"; plan {plan}" if plan else "")
        + f"; SM clock {ghz:.3f} GHz, %globaltimer steps {meta.get('globaltimer_step_ns', '?')} ns",
        f"- timeline: first block in {tl['launch_us']:.2f} µs after the stamp before the call (all "
        f"in by +{tl['enter_spread_us']:.2f}, 90 % by +{tl['enter_p90_us']:.2f}); a block's first "
        f"slot lands {tl['first_data_us']:.2f} µs after its entry (median); it streams "
        f"{tl['stream_us']:.2f} µs (median, longest {tl['stream_max_us']:.2f}); the last exit "
        f"{tl['last_exit_us']:.2f} µs after the stamp, {tl['exit_spread_us']:.2f} after the "
        f"median exit; the stamp after the call at {tl['stamped_us']:.2f} "
        f"(+{tl['after_us']:.2f})",
    ]
    if tl["ranges"]:
        lines.append(f"- K reduction: the last block of a range spends {tl['reduce_last_us']:.2f}"
                     f" µs from its barrier to its exit (the others {tl['exit_rest_us']:.2f})")
    if line := reading(st):
        lines.append(line)
    lines += ["", "| per stage, ns | median | p90 | n |", "|---|---:|---:|---:|"]
    for key, (med, p90, n) in st.items():
        lines.append(f"| {key} | {med:.0f} | {p90:.0f} | {n} |")
    summary.update({k: tl[k] for k in ("launch_us", "first_data_us", "stream_us",
                                       "exit_spread_us", "after_us", "late_blocks")})
    summary.update({"wait_data_ns": st["consumer wait for data"][0],
                    "work_ns": st["consumer work (fill, issue)"][0],
                    "wait_group_ns": st["consumer wait for an older group"][0],
                    "wait_slot_ns": st["producer wait for a free slot"][0],
                    "period_ns": st["stage period"][0]})
    return summary, "\n".join(lines) + "\n"


COLUMNS = [("event_us", "event µs"), ("read_floor_us", "read floor µs"), ("empty_us", "empty µs"),
           ("launch_us", "launch µs"), ("first_data_us", "1st data µs"),
           ("stream_us", "stream µs"), ("exit_spread_us", "exit spread µs"),
           ("after_us", "after µs"), ("late_blocks", "late blocks"),
           ("wait_data_ns", "wait data ns"), ("work_ns", "work ns"),
           ("wait_group_ns", "wait group ns"), ("wait_slot_ns", "wait slot ns"),
           ("period_ns", "stage ns")]


def compare(runs: Path) -> str:
    """Each case's event time (µs) in every run folder under `runs` (optin_iter's traced,
    control, knob and pipeline runs), side by side."""
    dirs = sorted(d for d in runs.iterdir() if d.is_dir() and any(d.glob("trace_*.json")))
    times: dict[str, dict[str, float]] = {}
    for d in dirs:
        for p in d.glob("trace_*.json"):
            meta = json.loads(p.read_text())
            times.setdefault(meta["name"], {})[d.name] = meta["event_us"]
    lines = ["| case | " + " | ".join(d.name for d in dirs) + " |",
             "|---" + "|---:" * len(dirs) + "|"]
    for name in sorted(times):
        lines.append(f"| {name} | " + " | ".join(
            f"{times[name][d.name]:.2f}" if d.name in times[name] else "" for d in dirs) + " |")
    return "# Event time per run, µs\n\n" + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, help="the probe's output folder (with --compare: the "
                                           "folder of run folders)")
    ap.add_argument("--md", type=Path, help="also write the report here")
    ap.add_argument("--compare", action="store_true", help="event times across run folders")
    args = ap.parse_args(argv)
    if args.compare:
        if not args.out.is_dir() or not any(args.out.glob("*/trace_*.json")):
            print(f"no run folders with trace_*.json in {args.out}", file=sys.stderr)
            return 1
        print(compare(args.out))
        return 0
    cases = sorted(args.out.glob("trace_*.json"))
    errors = sorted(args.out.glob("trace_*.error"))
    if not cases and not errors:
        print(f"no trace_*.json in {args.out}", file=sys.stderr)
        return 1
    reports = [case_report(p) for p in cases]
    table = ["| case | " + " | ".join(t for _, t in COLUMNS) + " |",
             "|---" + "|---:" * len(COLUMNS) + "|"]
    for s, _ in reports:
        cells = ["" if k not in s else f"{s[k]:.2f}" if k.endswith("us") else f"{s[k]:.0f}"
                 for k, _ in COLUMNS]
        table.append(f"| {s['name']} | " + " | ".join(cells) + " |")
    failed = [f"- {p.stem[len('trace_'):]} failed: {p.read_text().strip()}" for p in errors]
    text = ("# Kernel traces\n\n" + "\n".join(table) + "\n\n"
            + ("\n".join(failed) + "\n\n" if failed else "")
            + "\n".join(text for _, text in reports))
    print(text)
    if args.md:
        tmp = args.md.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(args.md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
