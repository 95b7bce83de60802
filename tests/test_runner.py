"""`tfbench run`: one row per sample, videos with the input's frame count, resume, refusals, summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tfbench import media, weights
from tfbench.benchmark.distributed import DistributedContext
from tfbench.benchmark.options import RunOptions
from tfbench.benchmark.results import RunConfigMismatch
from tfbench.benchmark.runner import Runner
from tfbench.cli import app
from tfbench.data.synthetic import SynthConfig, write_dataset
from tfbench.errors import TfbenchError
from tfbench.models.syncnet_python import SyncNetS

N_CLIPS = 3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    write_dataset(root, SynthConfig(layout="lrs2", speakers=1, clips=N_CLIPS, seconds=1.0, seed=3))
    return root


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TFBENCH_HOME with a random-weight syncnet_v2 in the published format at its registry path."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFBENCH_HOME", str(home))
        path = weights.expected_path("syncnet_v2")
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(SyncNetS().state_dict(), path)
    return home


@pytest.fixture
def env(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TFBENCH_HOME", str(home))
    return home


def _options(dataset: Path, out: Path, home: Path, **changes: object) -> RunOptions:
    values: dict[str, object] = {
        "model": "gt",
        "dataset": "synthetic",
        "root": dataset,
        "metrics": ("lse",),
        "out": out,
        "detector": "none",
        "overrides": {"syncnet_v2": home / "weights" / "syncnet_v2.model"},
        "workers": 2,
    }
    values.update(changes)
    return RunOptions(**values)  # type: ignore[arg-type]


def test_run_writes_one_row_and_one_video_per_sample(dataset: Path, env: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    store = Runner(_options(dataset, tmp_path / "run", env), DistributedContext()).run(
        lambda done, total: calls.append((done, total))
    )
    table = store.write_results()
    assert len(table) == N_CLIPS and set(table["status"]) == {"ok"}
    assert calls[-1] == (N_CLIPS, N_CLIPS)
    for row in table.itertuples():
        video = media.read_video(store.run_dir / str(row.output))
        assert video.n_frames == row.n_frames == 25
        assert video.audio is not None and abs(len(video.audio) - 16000) <= 1024
        assert np.isfinite(row.lse_d) and len(row.lse_curve) == 31
    summary = store.read_summary()
    assert summary["n_ok"] == N_CLIPS and summary["metrics"]["lse_d"]["n"] == N_CLIPS
    assert summary["metrics"]["lse_c"]["higher_is_better"] is True
    assert summary["crop_cache_misses"] == 2 * N_CLIPS  # generation crops + 224 crops, detected once each

    # rerunning resumes: no sample is processed again, and a second model reuses the cached crops
    calls.clear()
    Runner(_options(dataset, tmp_path / "run", env), DistributedContext()).run(
        lambda done, total: calls.append((done, total))
    )
    assert calls == []
    other = Runner(_options(dataset, tmp_path / "static", env, model="static"), DistributedContext()).run()
    assert other.read_summary()["crop_cache_hits"] == 2 * N_CLIPS
    assert other.read_summary()["crop_cache_misses"] == 0


def test_killed_run_resumes_where_it_stopped(dataset: Path, env: Path, tmp_path: Path) -> None:
    runner = Runner(_options(dataset, tmp_path / "run", env), DistributedContext())
    original = runner.process
    seen: list[str] = []

    def dies_on_second(item):  # type: ignore[no-untyped-def]
        if len(seen) == 1:
            raise KeyboardInterrupt
        seen.append(item.sample.id)
        return original(item)

    runner.process = dies_on_second  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    assert len(runner.store.rows()) == 1
    calls: list[int] = []
    Runner(_options(dataset, tmp_path / "run", env), DistributedContext()).run(lambda d, t: calls.append(t))
    assert calls and calls[0] == N_CLIPS - 1
    assert len(runner.store.write_results()) == N_CLIPS


def test_other_settings_in_the_same_folder_are_refused(dataset: Path, env: Path, tmp_path: Path) -> None:
    Runner(_options(dataset, tmp_path / "run", env, limit=1), DistributedContext()).run()
    with pytest.raises(RunConfigMismatch, match="model: 'gt' -> 'static'"):
        Runner(_options(dataset, tmp_path / "run", env, model="static", limit=1), DistributedContext()).run()


def test_shifted_baseline_changes_the_sync_curves(dataset: Path, env: Path, tmp_path: Path) -> None:
    """With random SyncNet weights the values mean little; this checks the rows differ as frames do."""
    gt = Runner(_options(dataset, tmp_path / "gt", env), DistributedContext()).run().write_results()
    shifted = Runner(_options(dataset, tmp_path / "sh", env, model="shifted"), DistributedContext()).run()
    table = shifted.write_results()
    assert not np.allclose(np.stack(gt["lse_curve"].to_list()), np.stack(table["lse_curve"].to_list()))


def test_unknown_model_and_missing_weights_are_one_line_errors(
    dataset: Path, env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(TfbenchError, match="did you mean 'gt'"):
        Runner(_options(dataset, tmp_path / "x", env, model="gtt"), DistributedContext())
    monkeypatch.setenv("TFBENCH_HOME", str(tmp_path / "empty-home"))
    with pytest.raises(TfbenchError, match="tfbench weights fetch syncnet_v2"):
        Runner(_options(dataset, tmp_path / "y", env, overrides={}), DistributedContext())


def test_cli_run_prints_the_table(dataset: Path, env: Path, tmp_path: Path) -> None:
    weights_file = env / "weights" / "syncnet_v2.model"
    args = ["run", "--model", "gt", "--dataset", "synthetic", "--root", str(dataset), "--metrics", "lse"]
    args += ["--detector", "none", "--out", str(tmp_path / "cli"), "--weights", f"syncnet_v2={weights_file}"]
    args += ["--limit", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "lse_d" in result.output and "1/0/0" in result.output
