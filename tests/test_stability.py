"""`tfbench stability`: the figure and tables on synthetic data with briefly trained experts, the curves
against a per-window recomputation, the accuracy at its reported threshold, the perturbations."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from tfbench import audio as tf_audio
from tfbench.data import load_samples
from tfbench.data.crop_cache import CropCache
from tfbench.data.faces import preset
from tfbench.data.synthetic import SynthConfig, write_dataset
from tfbench.errors import TfbenchError
from tfbench.media import read_video
from tfbench.models.avsyncnet import visual_input
from tfbench.models.syncnet_python import load_syncnet_v2
from tfbench.models.training import load_avsyncnet
from tfbench.models.wav2lip_syncnet import Wav2LipSyncNet, expert_face_input, load_wav2lip_syncnet
from tfbench.reports.stability_perturb import JITTER_PIXELS, PERTURBATIONS
from tfbench.reports.stability_stats import accuracy, choose_threshold, split_clips

# 4 clips of 0.6 s (15 frames); seed 7 plants an offset in the last one only, so 3 in-sync clips remain.
DATA = SynthConfig("lrs2", speakers=4, clips=1, seconds=0.6, seed=7, offset_fraction=0.3)
EXPERTS = ("syncnet", "avsyncnet", "wav2lip")
CROPS_224 = preset("syncnet_pipeline", detector="none", coverage="full", min_track=0, min_face_size=0)
CROPS_96 = preset("wav2lip", detector="none", coverage="full", min_track=0)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The synthetic dataset, with a private TFBENCH_HOME (crop cache) for the whole module."""
    base = tmp_path_factory.mktemp("stability")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFBENCH_HOME", str(base / "home"))
        write_dataset(base / "data", DATA)
        yield base / "data"


@pytest.fixture(scope="module")
def wav2lip_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random Wav2Lip expert in the published checkpoint format."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w2l") / "lipsync_expert.pth"
    torch.save({"state_dict": Wav2LipSyncNet().state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def study(
    root: Path,
    trained_syncnet_path: Path,
    trained_avsyncnet_path: Path,
    wav2lip_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    from tfbench.cli import app

    out = tmp_path_factory.mktemp("study") / "out"
    weights = {"syncnet_v2": trained_syncnet_path, "avsyncnet": trained_avsyncnet_path}
    weights["wav2lip_syncnet"] = wav2lip_path
    args = ["--device", "cpu", "stability", "--dataset", "synthetic", "--root", str(root), "--samples", "3"]
    args += ["--experts", ",".join(EXPERTS), "--detector", "none", "--out", str(out), "--seed", "3"]
    for name, path in weights.items():
        args += ["--weights", f"{name}={path}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _report(study: Path) -> dict[str, Any]:
    return json.loads((study / "stability.json").read_text())


# --------------------------------------------------------------------------- the command's files
def test_writes_the_figure_and_tables(study: Path) -> None:
    png, pdf = study / "figure1.png", study / "figure1.pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
    pixels = np.asarray(Image.open(png).convert("L"), dtype=np.float64)
    assert pixels.shape[1] > 800 and pixels.std() > 20  # four panels with lines, not a blank page
    report = _report(study)
    assert len(report["clips"]) == 3
    assert [s["reason"] for s in report["skipped"]] == ["known audio-video offset of -8 frames"]
    assert sorted(report["parts"].values()) == ["calibration", "evaluation", "evaluation"]
    stats = {row["expert"]: row for row in _rows(study / "stability.csv")}
    assert list(stats) == list(EXPERTS)
    assert stats["syncnet"]["lse_c_variance"] and not stats["avsyncnet"]["lse_c_variance"]
    for row in stats.values():
        mean, variance, cv = float(row["mean"]), float(row["variance"]), float(row["cv"])
        assert -1 <= mean <= 1 and variance > 0
        assert cv == pytest.approx(np.sqrt(variance) / abs(mean))
    reliability = _rows(study / "reliability.csv")
    scores = {"syncnet": ["sync", "lse_c", "lse_d"], "avsyncnet": ["sync"], "wav2lip": ["sync"]}
    expected = [
        (e, s, p) for e in EXPERTS for s in scores[e] for p in ("jitter", "jpeg", "brightness", "h264")
    ]
    assert [(r["expert"], r["score"], r["perturbation"]) for r in reliability] == expected
    assert all(float(r["mean_abs_change"]) > 0 for r in reliability)  # every perturbation moves the scores
    markdown = (study / "stability.md").read_text()
    assert "| expert | clips | windows | mean cos |" in markdown and "| syncnet | 3 |" in markdown
    assert "| avsyncnet | sync | jpeg |" in markdown and "JPEG re-encoding at quality 75" in markdown


def test_reliability_is_relative_to_the_clean_spread(study: Path) -> None:
    """relative_change = mean |change| / std over clips of the clean clip score (here the mean cosine)."""
    curves = json.loads((study / "curves.json").read_text())["curves"]
    for row in _rows(study / "reliability.csv"):
        if row["score"] == "sync":
            clean = np.array([np.mean(c) for c in curves[row["expert"]].values()])
            spread = clean.std(ddof=1)
            assert float(row["relative_change"]) * spread == pytest.approx(float(row["mean_abs_change"]))


def _direct_embeddings(expert: str, model: Any, sample_video: Path, cache: CropCache) -> tuple[list, list]:
    """Per-window (video, audio) embeddings from a plain loop over windows, each run through the model's
    own embedding functions on the crops of the face pipeline and the audio features of `tfbench.audio`."""
    video = read_video(sample_video)
    assert video.audio is not None
    wav = video.audio[: video.n_frames * 640]  # the clip's own duration (16 kHz / 25 fps), as `score` cuts it
    if expert == "syncnet":
        crops = torch.from_numpy(cache.get_or_compute(sample_video, CROPS_224).crops)
        mfcc = torch.as_tensor(tf_audio.syncnet_mfcc(wav))
        bgr = crops.flip(-1).permute(3, 0, 1, 2).float()  # (3, T, 224, 224), the reference's BGR
        pairs = [
            (
                model.forward_video(bgr[None, :, v : v + 5]),
                model.forward_audio(mfcc[None, None, :, 4 * v : 4 * v + 20]),
            )
            for v in range(len(crops) - 5)
        ]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    crops = torch.from_numpy(cache.get_or_compute(sample_video, CROPS_96).crops)
    mel = torch.as_tensor(tf_audio.wav2lip_mel(wav))
    videos, audios = [], []
    for v in range(len(crops) - 4):
        start = int(80 * v / 25)
        mel_window = mel[None, None, :, start : start + 16]
        if mel_window.shape[-1] < 16:
            break
        if expert == "avsyncnet":
            faces = crops[None, v : v + 5].permute(0, 1, 4, 2, 3).float() / 255.0
            videos.append(model.embed_video(visual_input(faces, model.config.visual_size)))
            audios.append(model.embed_audio(mel_window))
        else:
            videos.append(model.forward_video(expert_face_input(crops[None, v : v + 5])))
            audios.append(model.forward_audio(mel_window))
    return videos, audios


def test_curves_and_pairs_equal_a_per_window_recomputation(
    study: Path, root: Path, trained_syncnet_path: Path, trained_avsyncnet_path: Path, wav2lip_path: Path
) -> None:
    """Every curve value and every scored pair (in sync and off sync) is the cosine of the two embeddings
    computed window by window, to 1e-5."""
    models = {
        "syncnet": load_syncnet_v2(trained_syncnet_path),
        "avsyncnet": load_avsyncnet(trained_avsyncnet_path)[1],
        "wav2lip": load_wav2lip_syncnet(wav2lip_path),
    }
    curves = json.loads((study / "curves.json").read_text())["curves"]
    pairs = _rows(study / "pairs.csv")
    cache = CropCache()
    videos = {sample.id: sample.video for sample in load_samples("synthetic", root)}
    checked = 0
    for expert, model in models.items():
        for sample_id, curve in curves[expert].items():
            with torch.inference_mode():
                video_emb, audio_emb = _direct_embeddings(expert, model, videos[sample_id], cache)
            direct = [float(F.cosine_similarity(v, a)[0]) for v, a in zip(video_emb, audio_emb, strict=True)]
            np.testing.assert_allclose(curve, direct, atol=1e-5)
            for pair in (p for p in pairs if p["expert"] == expert and p["sample_id"] == sample_id):
                i, j = int(pair["video_window"]), int(pair["audio_window"])
                assert (i == j) == (pair["label"] == "1") and (i == j or abs(i - j) >= 5)
                cos = float(F.cosine_similarity(video_emb[i], audio_emb[j])[0])
                assert float(pair["similarity"]) == pytest.approx(cos, abs=1e-5)
                checked += 1
    assert checked == len(pairs) and len(pairs) > 100


def test_accuracy_is_taken_at_the_reported_threshold(study: Path) -> None:
    pairs = _rows(study / "pairs.csv")
    for row in _rows(study / "stability.csv"):
        mine = [p for p in pairs if p["expert"] == row["expert"]]
        threshold = float(row["threshold"])
        for part, key in (("evaluation", "accuracy"), ("calibration", "calibration_accuracy")):
            chosen = [p for p in mine if p["part"] == part]
            similarity = np.array([float(p["similarity"]) for p in chosen])
            label = np.array([int(p["label"]) for p in chosen])
            assert float(row[key]) == pytest.approx(np.mean((similarity > threshold) == (label == 1)))
            if part == "calibration":  # no other threshold does better on the calibration pairs
                assert all(accuracy(similarity, label, t) <= float(row[key]) for t in similarity)
        assert int(row["n_evaluation_pairs"]) == sum(p["part"] == "evaluation" for p in mine)


# --------------------------------------------------------------------------- pieces
def test_threshold_split_and_errors() -> None:
    similarity, label = np.array([0.1, 0.2, 0.6, 0.3, 0.9]), np.array([0, 0, 1, 0, 1])
    threshold = choose_threshold(similarity, label)
    assert 0.3 < threshold < 0.6 and accuracy(similarity, label, threshold) == 1.0
    parts = split_clips(["a", "b", "c", "d", "e"], seed=0)
    assert sorted(parts.values()).count("calibration") == 2 and parts == split_clips(list("abcde"), 0)
    with pytest.raises(TfbenchError, match="at least 2 scored clips"):
        split_clips(["a"], seed=0)


def test_perturbations_change_what_they_say() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    frames[:, :16] = 120  # a flat half, which JPEG keeps close
    windows = {
        224: np.tile(np.array([2, 30, 2, 30], np.int32), (6, 1)),
        96: np.tile(np.array([4, 20, 4, 20], np.int32), (6, 1)),
    }
    before = frames.copy()
    same, moved = PERTURBATIONS.get("jitter").apply(frames, windows, np.random.default_rng(1))
    shift = {size: moved[size] - windows[size] for size in windows}
    assert same is frames and np.abs(shift[224]).max() <= JITTER_PIXELS and np.abs(shift[224]).max() > 0
    np.testing.assert_array_equal(shift[224], shift[96])  # one offset per frame for every crop size
    np.testing.assert_array_equal(shift[224][:, 0], shift[224][:, 1])  # y1 and y2 move together
    jpeg, kept = PERTURBATIONS.get("jpeg").apply(frames, windows, rng)
    assert kept == windows and 0 < np.abs(jpeg[:, :16].astype(int) - 120).mean() < 3
    bright, _ = PERTURBATIONS.get("brightness").apply(frames, windows, rng)
    np.testing.assert_array_equal(bright, np.clip(np.rint(frames * 1.1), 0, 255).astype(np.uint8))
    odd = frames[:, :31, :31]  # yuv420p needs even sides: padded for the encoder, cropped back
    h264, kept = PERTURBATIONS.get("h264").apply(odd, windows, rng)
    assert h264.shape == odd.shape and kept == windows
    assert (
        0 < np.abs(h264[:, :16, :16].astype(int) - 120).mean() < 3
    )  # the flat part survives, but not exactly
    np.testing.assert_array_equal(frames, before)  # inputs are never modified


def test_unknown_expert_is_a_clear_error(root: Path, tmp_path: Path) -> None:
    from tfbench.cli import app

    args = ["stability", "--dataset", "synthetic", "--root", str(root), "--experts", "avsyncnt"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 2 and "did you mean 'avsyncnet'" in result.output
