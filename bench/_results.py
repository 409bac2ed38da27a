"""Writing a benchmark's results: the Markdown report and its JSON, each atomically."""

from __future__ import annotations

import json
from pathlib import Path

from llmaccel.files import atomic_write


def write_results(stem: Path, text: str, doc: dict) -> None:
    """Prints the report, then writes <stem>.md and <stem>.json (temp file + rename)."""
    print(text)
    atomic_write(stem.with_suffix(".md"), text)
    atomic_write(stem.with_suffix(".json"), json.dumps(doc, indent=1) + "\n")
    print(f"written: {stem}.md, {stem}.json")
