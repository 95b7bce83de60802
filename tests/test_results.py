"""Run folder store and statistics: atomic rows, resume, config mismatch, bootstrap and paired tests."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tfbench.benchmark.results import STATUS_FAILED, STATUS_OK, STATUS_SKIPPED, RunConfigMismatch, RunStore
from tfbench.benchmark.stats import bootstrap_ci, paired_comparison, summarize


def test_rows_are_written_once_per_sample_and_merged(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    store.open({"model": "gt", "dataset": "synthetic"})
    store.write_row({"sample_id": "b", "status": STATUS_OK, "psnr": 30.0})
    store.write_row({"sample_id": "a", "status": STATUS_FAILED, "reason": "boom"})
    store.write_row({"sample_id": "c", "status": STATUS_SKIPPED, "reason": "no face"})
    assert store.finished_ids() == {"b", "c"}  # the failed sample is retried on resume
    store.write_row({"sample_id": "a", "status": STATUS_OK, "psnr": 20.0})  # the retry replaces its row
    table = store.write_results()
    assert list(table["sample_id"]) == ["a", "b", "c"]
    assert list(table["status"]) == [STATUS_OK, STATUS_OK, STATUS_SKIPPED]
    assert store.results_path.exists()
    assert not [p for p in store.parts_dir.iterdir() if p.name.startswith(".")], "temporary files left"


def test_bad_row_is_refused(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.open({})
    with pytest.raises(ValueError, match="sample_id"):
        store.write_row({"status": "ok"})
    with pytest.raises(ValueError, match="status"):
        store.write_row({"sample_id": "x", "status": "done"})


def test_resume_with_other_settings_names_the_fields(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.open({"model": "gt", "metrics": ["lse"], "command": "a", "limit": 3})
    store.open({"model": "gt", "metrics": ["lse"], "command": "b", "limit": 5})  # volatile keys may change
    with pytest.raises(RunConfigMismatch, match=r"model: 'gt' -> 'static'"):
        RunStore(tmp_path).open({"model": "static", "metrics": ["lse"]})


def test_summary_json_has_no_nan(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.open({})
    store.write_summary({"psnr": {"mean": float("nan"), "max": float("inf"), "n": np.int64(0)}})
    data = json.loads(store.summary_path.read_text())
    assert data == {"psnr": {"mean": None, "max": "inf", "n": 0}}


def test_summary_statistics() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, float("nan")])
    summary = summarize(values)
    assert summary.mean == pytest.approx(2.5)
    assert summary.std == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert (summary.n, summary.n_missing) == (4, 1)
    assert summary.ci_low < summary.mean < summary.ci_high
    assert bootstrap_ci(values) == bootstrap_ci(values), "the interval must be reproducible"
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([1.0])))


def test_bootstrap_interval_covers_the_mean_at_the_nominal_rate() -> None:
    rng = np.random.default_rng(1)
    hits = 0
    for trial in range(200):
        sample = rng.normal(5.0, 2.0, size=40)
        low, high = bootstrap_ci(sample, n_boot=500, seed=trial)
        hits += low <= 5.0 <= high
    assert 0.88 <= hits / 200 <= 0.99


def test_paired_comparison_detects_a_shift_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(8.0, 1.0, size=60)
    better = paired_comparison(a, a + 0.5 + rng.normal(0, 0.1, size=60))
    assert better.diff == pytest.approx(0.5, abs=0.05)
    assert better.ci_low > 0 and better.p_value < 1e-6
    same = paired_comparison(a, a)
    assert same.diff == 0 and same.p_value == 1.0
    noise = paired_comparison(a, a + rng.normal(0, 1.0, size=60))
    assert noise.p_value > 0.01
    with pytest.raises(ValueError, match="align"):
        paired_comparison(a, a[:-1])


def test_paired_comparison_ties_equal_infinities_and_drops_one_sided_ones() -> None:
    """Two runs whose frames both equal the reference (PSNR +inf) tie; a pair with one infinite side has no
    finite difference and is dropped, as is a NaN."""
    inf, nan = float("inf"), float("nan")
    result = paired_comparison(np.array([inf, inf, 30.0, inf, nan]), np.array([inf, inf, 31.0, 25.0, 20.0]))
    assert result.n == 3 and result.diff == pytest.approx(1 / 3)
    assert result.mean_a == inf and result.mean_b == inf
    both = paired_comparison(np.full(4, inf), np.full(4, inf))
    assert both.n == 4 and both.diff == 0 and both.p_value == 1.0 and both.ci_low == both.ci_high == 0
