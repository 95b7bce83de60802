"""`tfbench compare` / `tfbench runs`: common samples only, direction-aware verdicts, paired statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from tfbench.benchmark.compare import compare_runs
from tfbench.benchmark.results import RunStore
from tfbench.benchmark.summary import write_summary
from tfbench.cli import app

DIRECTIONS = {"lse_c": True, "lse_d": False, "psnr": True}


def _run(folder: Path, ids: list[str], lse_c: np.ndarray, lse_d: np.ndarray, psnr: np.ndarray) -> Path:
    store = RunStore(folder)
    store.open({"model": folder.name})
    for i, sample in enumerate(ids):
        store.write_row(
            {"sample_id": sample, "status": "ok", "lse_c": lse_c[i], "lse_d": lse_d[i], "psnr": psnr[i]}
        )
    store.write_row({"sample_id": "skipped-one", "status": "skipped", "reason": "no face"})
    write_summary(store, store.write_results(), DIRECTIONS, {})
    return folder


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    ids = [f"clip{i:03d}" for i in range(40)]
    c, d, p = rng.normal(7, 1, 40), rng.normal(7, 1, 40), rng.normal(30, 2, 40)
    a = _run(tmp_path / "a", ids, c, d, p)
    # B: better sync (higher lse_c, lower lse_d), same psnr up to noise; one extra sample A lacks
    b = _run(
        tmp_path / "b",
        [*ids, "only-b"],
        np.append(c + 0.8, 0.0),
        np.append(d - 0.5, 99.0),
        np.append(p + rng.normal(0, 0.01, 40), 0.0),
    )
    return a, b


def test_direction_aware_verdicts_on_common_samples(tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    comparisons, n_common = compare_runs(a, b)
    assert n_common == 40  # the skipped sample and B's extra sample are not compared
    by_metric = {c.metric: c for c in comparisons}
    assert by_metric["lse_c"].better == "B" and by_metric["lse_c"].result.diff > 0
    assert by_metric["lse_d"].better == "B" and by_metric["lse_d"].result.diff < 0  # lower is better
    assert by_metric["psnr"].better is None  # the CI of a noise-only difference contains 0
    assert by_metric["lse_c"].result.p_value < 1e-6


def test_compare_and_runs_cli(tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    result = CliRunner().invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert "40 common samples" in result.output and "lse_d" in result.output
    listed = CliRunner().invoke(app, ["runs", str(tmp_path)])
    assert listed.exit_code == 0 and "40/1/0" in listed.output
