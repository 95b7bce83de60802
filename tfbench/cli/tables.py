"""Rich tables of run summaries for the terminal (reports render Markdown/LaTeX/CSV/HTML elsewhere)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rich.table import Table


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _mean_with_ci(stats: Mapping[str, Any]) -> str:
    """ "mean ±h" with h the half-width of the 95% CI (the exact bounds are in summary.json)."""
    mean, low, high = stats.get("mean"), stats.get("ci_low"), stats.get("ci_high")
    if not isinstance(low, float) or not isinstance(high, float) or not math.isfinite(high - low):
        return _number(mean)
    return f"{_number(mean)} ±{(high - low) / 2:.2g}"


def summary_table(summaries: Mapping[str, Mapping[str, Any]]) -> Table:
    """One row per run: each metric's mean with its 95% CI, the dataset-level values, and the counts."""
    keys: dict[str, bool | None] = {}
    dataset_keys: list[str] = []
    for summary in summaries.values():
        for key, stats in summary.get("metrics", {}).items():
            keys.setdefault(key, stats.get("higher_is_better"))
        for key, value in summary.get("dataset_metrics", {}).items():
            if isinstance(value, int | float) and key not in dataset_keys:
                dataset_keys.append(key)
    table = Table(title="tfbench results: mean over videos ±half-width of the 95% CI")
    table.add_column("run")
    for key, higher in keys.items():
        table.add_column(f"{key} {'↑' if higher else '↓'}", justify="right")
    for key in dataset_keys:
        table.add_column(key, justify="right")
    table.add_column("ok/skip/fail", justify="right")
    for name, summary in summaries.items():
        cells = [name]
        for key in keys:
            stats = summary.get("metrics", {}).get(key)
            cells.append("-" if stats is None else _mean_with_ci(stats))
        cells += [_number(summary.get("dataset_metrics", {}).get(key)) for key in dataset_keys]
        cells.append(f"{summary.get('n_ok', 0)}/{summary.get('n_skipped', 0)}/{summary.get('n_failed', 0)}")
        table.add_row(*cells)
    return table
