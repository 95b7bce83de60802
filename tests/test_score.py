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
from tfbench.benchmark.score import SUMMARY_KEYS, ScoreOptions, Scorer, frame_record, score_json
from tfbench.cli import app
from tfbench.data.synthetic import SynthConfig, write_dataset
from tfbench.errors import TfbenchError
from tfbench.media import read_video, write_video
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
    assert {"id", "lse_d", "lse_c", "av_offset", "lse_curve", "frame_mismatch"} <= set(data["videos"][0])
    summary = data["summary"]
    issue_keys = ["lse_d", "lse_c", "av_offset", "fid", "ssim", "psnr", "lpips", "lmd", "idsim"]  # issue 4
    issue_keys += ["sync_w2l", "avsync"]
    assert list(summary) == list(SUMMARY_KEYS) == issue_keys
    assert {key for key, value in summary.items() if value is not None} == {"lse_d", "lse_c", "av_offset"}
    assert set(summary["lse_d"]) == {"mean", "std", "n"} and summary["lse_d"]["n"] == 2
    offsets = [video["av_offset"] for video in data["videos"]]
    assert summary["av_offset"]["n"] == 2 and summary["av_offset"]["mean"] == pytest.approx(np.mean(offsets))


def test_a_generated_video_shorter_than_its_reference_is_scored_over_the_common_frames(
    tmp_path: Path,
) -> None:
    """Reference clips of 2 s; one generated clip keeps only its first second: it is scored over 25 frames
    and its row (and the JSON) records both counts and the mismatch; the full-length one records none."""
    write_dataset(tmp_path / "data", SynthConfig(layout="lrs2", speakers=1, clips=2, seconds=2.0, seed=6))
    truth = tmp_path / "data" / "main"
    shutil.copytree(truth, tmp_path / "generated")
    short, full = sorted((tmp_path / "generated").rglob("*.mp4"))
    video = read_video(short)
    assert video.audio is not None and video.n_frames == 50
    write_video(short, video.frames[:25], 25.0, video.audio[:16000])
    options = ScoreOptions(tmp_path / "generated", tmp_path / "run", truth, ("psnr",), "none")
    store = Scorer(options, DistributedContext()).run()
    rows = {Path(row["video"]).resolve(): row for row in score_json(store)["videos"]}
    cut, whole = rows[short.resolve()], rows[full.resolve()]
    assert cut["status"] == "ok" and np.isfinite(cut["psnr"])
    assert (cut["n_frames"], cut["n_frames_generated"], cut["n_frames_reference"]) == (25, 25, 50)
    assert "generated 25, reference 50" in cut["frame_mismatch"] and "common 25" in cut["frame_mismatch"]
    assert (whole["n_frames"], whole["n_frames_reference"], whole["frame_mismatch"]) == (50, 50, None)


def test_frame_record_names_what_was_cut() -> None:
    same = frame_record(40, {"generated": 40, "reference": 40}, 41)  # AAC padding: the audio runs longer
    assert same == {
        "n_frames": 40,
        "n_frames_generated": 40,
        "n_frames_reference": 40,
        "n_frames_audio": 41,
        "frame_mismatch": None,
    }
    short_audio = frame_record(30, {"reference": 40}, 30)
    assert (
        short_audio["frame_mismatch"]
        == "frame counts differ (reference 40, audio 30): scored the common 30 frames"
    )
    assert frame_record(25, {"generated": 25, "reference": None}, 25)["frame_mismatch"] is None


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
