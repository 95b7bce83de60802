"""summary.json of a run: per-metric mean, std, 95% bootstrap CI and n over videos, plus dataset values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from tfbench.benchmark.results import STATUS_FAILED, STATUS_OK, STATUS_SKIPPED, RunStore
from tfbench.benchmark.stats import summarize


def build_summary(
    table: pd.DataFrame,
    directions: Mapping[str, bool],
    dataset_values: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary of a results table. Means are over scored videos; `n` is each metric's denominator."""
    scored = table[table["status"] == STATUS_OK]
    metrics: dict[str, Any] = {}
    for key, higher in directions.items():
        if key not in scored:
            continue
        values = pd.to_numeric(scored[key], errors="coerce").to_numpy(dtype=float)
        metrics[key] = {**summarize(values).as_dict(), "higher_is_better": higher}
    reasons = table.loc[table["status"] != STATUS_OK, ["sample_id", "status", "reason"]]
    return {
        "n_samples": len(table),
        "n_ok": int((table["status"] == STATUS_OK).sum()),
        "n_skipped": int((table["status"] == STATUS_SKIPPED).sum()),
        "n_failed": int((table["status"] == STATUS_FAILED).sum()),
        "metrics": metrics,
        "dataset_metrics": dict(dataset_values),
        "not_scored": reasons.to_dict(orient="records"),
        **(extra or {}),
    }


def write_summary(
    store: RunStore,
    table: pd.DataFrame,
    directions: Mapping[str, bool],
    dataset_values: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    summary = build_summary(table, directions, dataset_values, extra)
    store.write_summary(summary)
    return summary
