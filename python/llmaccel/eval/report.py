"""The comparison report: one row per scheme (quality, speed, size), printed as a table and saved
as Markdown, JSON and a PNG plot (quality against speed and against size), atomically."""

from __future__ import annotations

import io
import json
from pathlib import Path

from ..files import atomic_write

# (key, header, format); a missing value prints as "–".
COLUMNS = (
    ("scheme", "scheme", "{}"),
    ("ppl", "ppl", "{:.2f}"),
    ("ppl_increase_pct", "Δppl %", "{:+.2f}"),
    ("kl", "KL (nats)", "{:.4f}"),
    ("top1", "top-1 agree", "{:.3f}"),
    ("decode_b1", "decode tok/s b=1", "{:.1f}"),
    ("speedup_b1", "× fp32 HF", "{:.2f}"),
    ("decode_b8", "decode tok/s b=8", "{:.1f}"),
    ("prefill", "prefill tok/s", "{:.0f}"),
    ("weight_mb", "weights MB", "{:.1f}"),
    ("size_pct", "% of fp32", "{:.1f}"),
    ("peak_mb", "peak RSS MB", "{:.0f}"),
    ("quantize_s", "quantize s", "{:.0f}"),
)


def _cell(row: dict, key: str, fmt: str) -> str:
    v = row.get(key)
    return "–" if v is None else fmt.format(v)


def markdown_table(rows: list[dict]) -> str:
    cols = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    lines = ["| " + " | ".join(h for _, h, _ in cols) + " |",
             "|" + "|".join("---" if k == "scheme" else "---:" for k, _, _ in cols) + "|"]
    lines += ["| " + " | ".join(_cell(r, k, f) for k, _, f in cols) + " |" for r in rows]
    return "\n".join(lines)


def add_relative(rows: list[dict], baseline: str) -> None:
    """Fills ppl_increase_pct, speedup_b1 and size_pct against the row named ``baseline``."""
    base = next((r for r in rows if r["scheme"] == baseline), None)
    if base is None:
        raise ValueError(f"no row named {baseline!r}")
    for r in rows:
        if r.get("ppl") is not None and base.get("ppl"):
            r["ppl_increase_pct"] = 100 * (r["ppl"] / base["ppl"] - 1)
        if r.get("decode_b1") is not None and base.get("hf_decode_b1"):
            r["speedup_b1"] = r["decode_b1"] / base["hf_decode_b1"]
        if r.get("weight_mb") is not None and base.get("weight_mb"):
            r["size_pct"] = 100 * r["weight_mb"] / base["weight_mb"]


def plot(rows: list[dict], title: str) -> bytes | None:
    """PNG bytes: perplexity against decode speed (batch 1) and against weight size."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, key, label in ((axes[0], "decode_b1", "decode tokens/s, batch 1 (higher is better)"),
                           (axes[1], "weight_mb", "weights, MB (lower is better)")):
        for r in rows:
            if r.get(key) is None or r.get("ppl") is None:
                continue
            ax.scatter(r[key], r["ppl"], s=60, zorder=3)
            ax.annotate(r["scheme"], (r[key], r["ppl"]), textcoords="offset points",
                        xytext=(6, 4), fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel("perplexity (lower is better)")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_report(rows: list[dict], meta: dict, out_dir: str | Path, stem: str,
                 title: str, notes: list[str] | None = None) -> dict[str, Path]:
    """Writes {stem}.md, {stem}.json and {stem}.png into out_dir; returns their paths."""
    out_dir = Path(out_dir)
    md = [f"# {title}", "", markdown_table(rows), ""]
    md += [f"- {n}" for n in notes or []]
    md += ["", "Run: " + ", ".join(f"{k}={v}" for k, v in meta.items()), ""]
    paths = {"md": atomic_write(out_dir / f"{stem}.md", "\n".join(md)),
             "json": atomic_write(out_dir / f"{stem}.json",
                                  json.dumps({"meta": meta, "rows": rows, "notes": notes or []},
                                             indent=1, default=str) + "\n")}
    png = plot(rows, title)
    if png is not None:
        paths["png"] = atomic_write(out_dir / f"{stem}.png", png)
    return paths
