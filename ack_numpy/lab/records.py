"""Reading a finished run for a report (placeholder, replaced below)."""
from __future__ import annotations

from pathlib import Path

from ..train import read_metrics


def verified_rows(run):
    path = run.folder / "metrics.csv"
    rows = read_metrics(path) if path.exists() else []
    return rows if len(rows) >= run.config.epochs else None


def write_report_files(out: Path, texts: dict, writers: dict) -> None:
    for name, text in texts.items():
        (out / name).write_text(text)
    for name, write in writers.items():
        write(out / name)
