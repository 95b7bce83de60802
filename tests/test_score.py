"""`tfbench score`: videos from another tool scored against ground truth with the same crops."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tfbench.benchmark.distributed import DistributedContext
from tfbench.benchmark.score import ScoreOptions, Scorer
from tfbench.cli import app
from tfbench.data.synthetic import SynthConfig, write_dataset
from tfbench.errors import TfbenchError
from tfbench.models.syncnet_python import SyncNetS


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Ground truth (LRS2 layout), a 'generated' copy of it, and a random-weight syncnet_v2 file."""
    root = tmp_path_factory.mktemp("score")
    write_dataset(root / "data", SynthConfig(layout="lrs2", speakers=1, clips=2, seconds=1.0, seed=5))
    shutil.copytree(root / "data" / "main", root / "generated")
    torch.manual_seed(0)
    torch.save(SyncNetS().state_dict(), root / "syncnet_v2.model")
    return root / "data" / "main", root / "generated", root / "syncnet_v2.model"


def _options(folders: tuple[Path, Path, Path], out: Path, **changes: object) -> ScoreOptions:
    truth, generated, syncnet = folders
    values: dict[str, object] = {
        "path": generated,
        "out": out,
        "reference": truth,
        "metrics": ("lse",),
        "detector": "none",
        "overrides": {"syncnet_v2": syncnet},
    }
    values.update(changes)
    return ScoreOptions(**values)  # type: ignore[arg-type]


def test_scores_every_video_matched_by_relative_path(
    folders: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    store = Scorer(_options(folders, tmp_path / "run"), DistributedContext()).run()
    table = store.write_results()
    assert len(table) == 2 and set(table["status"]) == {"ok"}
    assert all(np.isfinite(table["lse_d"])) and all(n == 25 for n in table["n_frames"])
    assert store.read_summary()["metrics"]["lse_d"]["n"] == 2


def test_single_file_and_full_reference_refusal(folders: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, generated, _ = folders
    one = next(generated.rglob("*.mp4"))
    store = Scorer(_options(folders, tmp_path / "one", path=one, reference=None), DistributedContext()).run()
    assert store.read_summary()["n_ok"] == 1
    with pytest.raises(TfbenchError, match="one ground-truth file"):
        Scorer(_options(folders, tmp_path / "bad", path=one), DistributedContext()).run()


def test_cli_writes_json(folders: tuple[Path, Path, Path], tmp_path: Path) -> None:
    truth, generated, syncnet = folders
    out = tmp_path / "scores.json"
    args = ["score", str(generated), "--reference", str(truth), "--metrics", "lse", "--detector", "none"]
    args += ["--weights", f"syncnet_v2={syncnet}", "--out", str(tmp_path / "run"), "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert set(data) == {"videos", "summary"} and len(data["videos"]) == 2
    assert {"id", "lse_d", "lse_c", "av_offset", "lse_curve"} <= set(data["videos"][0])
    assert set(data["summary"]) == {"lse_d", "lse_c"}
    assert set(data["summary"]["lse_d"]) == {"mean", "std", "n"} and data["summary"]["lse_d"]["n"] == 2


def test_legacy_lse_protocol_is_used_and_recorded(folders: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """`--lse-protocol w2l_lrs` re-reads each video (whole frame, JPEG round trip) and says so in config."""
    legacy = Scorer(_options(folders, tmp_path / "w2l", lse_protocol="w2l_lrs"), DistributedContext()).run()
    tfbench = Scorer(_options(folders, tmp_path / "tf"), DistributedContext()).run()
    a, b = legacy.write_results(), tfbench.write_results()
    assert np.isfinite(a["lse_d"]).all() and a["lse_tracks"].tolist() == [1, 1]
    assert not np.allclose(a["lse_d"], b["lse_d"])  # another frame path, other numbers
    config = legacy.read_config()
    assert config is not None and config["metric_settings"]["lse_protocol"] == "w2l_lrs"
    with pytest.raises(TfbenchError, match="unknown"):
        Scorer(_options(folders, tmp_path / "bad", lse_protocol="nope"), DistributedContext())
