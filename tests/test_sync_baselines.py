"""Reference baselines through the whole runner with a briefly trained SyncNet: what sync metrics must see.

`gt` must beat `static` and `shifted` on LSE-C, `shifted --shift 5` must report an AV offset of 5 +- 1
(syncnet_python's sign: the video lags the audio), and `tfbench compare` must mark `gt` better on sync.
The SyncNet is the session fixture `trained_syncnet_path` (tests/conftest.py), loaded from its
published-format file through `--weights syncnet_v2=PATH`, as a user's real file would be.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tfbench.benchmark.compare import compare_runs
from tfbench.benchmark.distributed import DistributedContext
from tfbench.benchmark.options import RunOptions
from tfbench.benchmark.runner import Runner
from tfbench.data.synthetic import SynthConfig, write_dataset

CLIPS = SynthConfig("lrs2", speakers=6, clips=1, seconds=2.0, seed=3000, offset_fraction=0.0)
"""Six in-sync held-out identities (the SyncNet trained on seed 1000)."""


@pytest.fixture(scope="module")
def runs(trained_syncnet_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sync-baselines")
    write_dataset(root / "data", CLIPS)
    out: dict[str, Path] = {}
    for name, model, options in (
        ("gt", "gt", {}),
        ("static", "static", {}),
        ("shifted", "shifted", {"shift": "5"}),
    ):
        run_options = RunOptions(
            model=model,
            dataset="synthetic",
            root=root / "data",
            metrics=("lse",),
            out=root / name,
            detector="none",
            overrides={"syncnet_v2": trained_syncnet_path},
            model_options=options,
        )
        out[name] = Runner(run_options, DistributedContext()).run().run_dir
    return out


def _rows(run: Path) -> pd.DataFrame:
    return pd.read_parquet(run / "results.parquet").set_index("sample_id").sort_index()


def test_gt_beats_static_and_shifted_on_lse_c(runs: dict[str, Path]) -> None:
    gt, static, shifted = (_rows(runs[name]) for name in ("gt", "static", "shifted"))
    assert gt["lse_c"].mean() > static["lse_c"].mean()
    assert gt["lse_c"].mean() > shifted["lse_c"].mean()
    assert (np.abs(gt["av_offset"]) <= 1).all(), gt["av_offset"].tolist()


def test_shifted_by_5_reports_offset_5(runs: dict[str, Path]) -> None:
    """The run's offset (median over clips) is 5 +- 1, and so is at least 80% of the clips' own offsets:
    the first 5 frames of a shifted clip repeat frame 0 (nothing to shift in), which weakens short clips."""
    offsets = _rows(runs["shifted"])["av_offset"]
    assert abs(float(np.median(offsets)) - 5) <= 1, offsets.tolist()
    assert (np.abs(offsets - 5) <= 1).mean() >= 0.8, offsets.tolist()


def test_compare_marks_gt_better_on_sync(runs: dict[str, Path]) -> None:
    comparisons, n_common = compare_runs(runs["shifted"], runs["gt"])  # B = gt
    assert n_common == CLIPS.speakers
    by_metric = {c.metric: c for c in comparisons}
    assert by_metric["lse_c"].better == "B"
    assert by_metric["lse_d"].better == "B"
    assert 0 < by_metric["lse_c"].result.p_value <= 0.05
