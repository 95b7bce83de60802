"""The runner across processes: a run killed with SIGKILL resumes exactly, and torchrun (gloo, 2 ranks)
gives the same rows, FID and means as one process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_fid import random_fid_inception_state

from tfbench.data.synthetic import SynthConfig, write_dataset

N_CLIPS = 4
METRIC_KEYS = ("psnr", "ssim")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small synthetic split and a random-weight FID Inception file in pytorch-fid's format."""
    root = tmp_path_factory.mktemp("procs")
    write_dataset(root / "data", SynthConfig(layout="lrs2", speakers=2, clips=2, seconds=0.6, seed=11))
    inception = root / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(random_fid_inception_state(), inception)
    return root / "data", inception


def _command(data: Path, out: Path, metrics: str, inception: Path, *prefix: str) -> list[str]:
    launcher = list(prefix) or [sys.executable, "-m", "tfbench"]
    return [
        *launcher,
        "run",
        "--model",
        "static",
        "--dataset",
        "synthetic",
        "--root",
        str(data),
        "--metrics",
        metrics,
        "--detector",
        "none",
        "--out",
        str(out),
        "--weights",
        f"fid_inception={inception}",
    ]


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "TFBENCH_HOME": str(home), "OMP_NUM_THREADS": "1"}


def _rows(run: Path) -> pd.DataFrame:
    return pd.read_parquet(run / "results.parquet").set_index("sample_id").sort_index()


def test_sigkilled_run_resumes_with_one_row_per_sample(setup: tuple[Path, Path], tmp_path: Path) -> None:
    data, inception = setup
    env = _env(tmp_path / "home")
    whole = tmp_path / "whole"
    subprocess.run(_command(data, whole, "psnr,ssim", inception), env=env, check=True, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _command(data, killed, "psnr,ssim", inception), env=env, stderr=subprocess.DEVNULL
    )
    parts = killed / "parts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (parts.is_dir() and any(parts.glob("*.parquet"))):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = len(list(parts.glob("*.parquet")))
    assert 1 <= written < N_CLIPS, "the kill must land part-way through the run"
    assert not (killed / "summary.json").exists()

    subprocess.run(_command(data, killed, "psnr,ssim", inception), env=env, check=True, capture_output=True)
    rows, reference = _rows(killed), _rows(whole)
    assert list(rows.index) == list(reference.index) and len(rows) == N_CLIPS  # exactly one row each
    assert not [p for p in parts.iterdir() if p.name.startswith(".")], "no temporary part left behind"
    summary = json.loads((killed / "summary.json").read_text())
    expected = json.loads((whole / "summary.json").read_text())
    for key in METRIC_KEYS:
        assert summary["metrics"][key] == expected["metrics"][key]


def test_torchrun_two_ranks_equal_one_process(setup: tuple[Path, Path], tmp_path: Path) -> None:
    data, inception = setup
    env = _env(tmp_path / "home")
    metrics = "psnr,ssim,fid"
    single, multi = tmp_path / "single", tmp_path / "multi"
    subprocess.run(_command(data, single, metrics, inception), env=env, check=True, capture_output=True)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    proc = subprocess.run(
        _command(data, multi, metrics, inception, *torchrun, "-m", "tfbench"),
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows_single, rows_multi = _rows(single), _rows(multi)
    assert list(rows_multi.index) == list(rows_single.index)  # no sample dropped or duplicated
    for key in METRIC_KEYS:
        np.testing.assert_allclose(rows_multi[key], rows_single[key], rtol=0, atol=1e-6)
    one = json.loads((single / "summary.json").read_text())
    two = json.loads((multi / "summary.json").read_text())
    assert two["dataset_metrics"]["fid"] == pytest.approx(one["dataset_metrics"]["fid"], abs=1e-6)
    assert two["dataset_metrics"]["fid_frames"] == one["dataset_metrics"]["fid_frames"]
    for key in METRIC_KEYS:
        assert two["metrics"][key]["mean"] == pytest.approx(one["metrics"][key]["mean"], abs=1e-6)
    config = (multi / "config.yaml").read_text()
    assert "world_size: 2" in config
