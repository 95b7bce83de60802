"""Run comparison: the metrics of two runs over the samples both scored, with a paired test per metric."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tfbench.benchmark.results import STATUS_OK, RunStore
from tfbench.benchmark.stats import PairedComparison, paired_comparison
from tfbench.errors import TfbenchError


@dataclass(frozen=True)
class MetricComparison:
    """One metric of B against A; `better` names the better run (None when the CI of the difference
    contains zero), honouring the metric's direction."""

    metric: str
    higher_is_better: bool
    result: PairedComparison
    better: str | None


def _scored(store: RunStore) -> pd.DataFrame:
    table = store.rows()
    if table.empty:
        raise TfbenchError(f"{store.run_dir}: no results (not a run folder, or nothing scored yet)")
    return table[table["status"] == STATUS_OK].set_index("sample_id")


def compare_runs(run_a: Path, run_b: Path) -> tuple[list[MetricComparison], int]:
    """Compare every metric both runs report, over their common scored samples; also returns that count."""
    store_a, store_b = RunStore(run_a), RunStore(run_b)
    directions = {
        key: stats["higher_is_better"]
        for store in (store_a, store_b)
        for key, stats in store.read_summary().get("metrics", {}).items()
    }
    a, b = _scored(store_a), _scored(store_b)
    common = a.index.intersection(b.index)
    if common.empty:
        raise TfbenchError(f"{run_a} and {run_b} have no scored sample in common")
    out = []
    for metric, higher in sorted(directions.items()):
        if metric not in a or metric not in b:
            continue
        values_a = pd.to_numeric(a.loc[common, metric], errors="coerce").to_numpy(dtype=float)
        values_b = pd.to_numeric(b.loc[common, metric], errors="coerce").to_numpy(dtype=float)
        result = paired_comparison(values_a, values_b)
        better = None
        if np.isfinite(result.ci_low) and (result.ci_low > 0 or result.ci_high < 0):
            b_higher = result.ci_low > 0
            better = "B" if b_higher == bool(higher) else "A"
        out.append(MetricComparison(metric, bool(higher), result, better))
    return out, len(common)
