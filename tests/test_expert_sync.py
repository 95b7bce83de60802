"""sync_w2l: the Wav2Lip expert's batched score and offset search against a per-window reference loop."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tfbench import audio as tf_audio
from tfbench import weights
from tfbench.errors import TfbenchError
from tfbench.metrics import expert_sync as es
from tfbench.metrics.expert_sync import (
    ExpertSync,
    ExpertSyncResult,
    expert_sync_for_clip,
    expert_windows,
    n_full_mel_windows,
    offset_curve,
)
from tfbench.models.wav2lip_syncnet import Wav2LipSyncNet, expert_face_input

FPS = 25.0


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a shared 2-core machine, 2 threads spend ~1 s per forward at OpenMP barriers
    (measured here: 65 ms per window with 1 thread, 1-2 s per call with 2); the numbers do not change."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint() -> dict[str, Any]:
    """A random expert in the published file format: a dict holding `state_dict` with `module.` prefixes."""
    torch.manual_seed(0)
    state = {f"module.{key}": value for key, value in Wav2LipSyncNet().state_dict().items()}
    return {"state_dict": state, "global_step": 0, "global_epoch": 0}


@pytest.fixture()
def metric_home(tmp_path, monkeypatch: pytest.MonkeyPatch, checkpoint):
    """TFBENCH_HOME in tmp with the checkpoint at the registry's path; its size check dropped."""
    monkeypatch.setenv("TFBENCH_HOME", str(tmp_path / "home"))
    path = weights.expected_path("wav2lip_syncnet")
    path.parent.mkdir(parents=True)
    torch.save(checkpoint, path)
    original = weights.spec
    monkeypatch.setattr(weights, "spec", lambda name: dataclasses.replace(original(name), size=None))
    return path


@pytest.fixture(scope="module")
def model(checkpoint) -> Wav2LipSyncNet:
    net = Wav2LipSyncNet()
    net.load_state_dict({k.removeprefix("module."): v for k, v in checkpoint["state_dict"].items()})
    return net.eval()


def _clip(n_frames: int, n_samples: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """(T, 96, 96, 3) uint8 crops with a moving bright mouth-like band, and the clip's Wav2Lip mel."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(60, 200, (n_frames, 96, 96, 3), dtype=np.uint8)
    for t in range(n_frames):
        height = int(rng.integers(2, 20))
        frames[t, 64 - height // 2 : 64 + height // 2, 25:71] = (200, 60, 70)
    audio = (rng.standard_normal(n_samples) * np.sin(np.linspace(0, 20, n_samples)) * 0.3).astype(np.float32)
    return torch.from_numpy(frames), tf_audio.wav2lip_mel(audio)


def _reference(model: Wav2LipSyncNet, frames: torch.Tensor, mel: np.ndarray, vshift: int = 15):
    """A direct transcription: one forward per window, each window's own 15-channel input and mel slice;
    then, per offset, the mean over the windows of the cosine with window v - offset's audio, 0 where that
    window does not exist (syncnet_python's zero padding)."""
    video, audio, scores = [], [], []
    with torch.no_grad():
        for v in range(frames.shape[0] - 4):
            start = int(80 * v / FPS)
            if start + 16 > mel.shape[1]:
                break
            faces = expert_face_input(frames[v : v + 5][None])
            mel_window = torch.from_numpy(mel[:, start : start + 16])[None, None]
            a, e = model(mel_window, faces)
            video.append(e[0])
            audio.append(a[0])
            scores.append(float(F.cosine_similarity(a, e)[0]))
    padded = [torch.zeros(512)] * vshift + audio + [torch.zeros(512)] * vshift
    curve = []
    for offset in range(vshift, -vshift - 1, -1):  # index j is offset vshift - j
        sims = [F.cosine_similarity(video[v], padded[v - offset + vshift], dim=0) for v in range(len(video))]
        curve.append(float(sum(sims)) / len(video))
    return scores, curve


@pytest.mark.parametrize(
    ("n_frames", "n_samples"),
    [(8, 8 * 640), (12, 8 * 640)],  # equal lengths (4 windows); audio shorter than the video (4 windows)
    ids=["equal-lengths", "short-audio"],
)
def test_metric_equals_the_per_window_reference(metric_home, model, n_frames: int, n_samples: int) -> None:
    frames, mel = _clip(n_frames, n_samples, seed=n_frames)
    metric = ExpertSync()  # the random checkpoint, through weights.resolve
    result = expert_sync_for_clip(metric.model, frames, mel)
    metric.update(result)
    scores, curve = _reference(model, frames, mel)
    assert result.n_windows == len(scores) > 0
    assert np.allclose(result.window_scores, scores, atol=1e-5, rtol=0)
    assert float(metric.compute()["sync_w2l"]) == pytest.approx(float(np.mean(scores)), abs=1e-5)
    assert np.allclose(result.curve, curve, atol=1e-5, rtol=0)
    assert np.allclose(metric.per_clip()["curve"][0].numpy(), curve, atol=1e-5, rtol=0)
    best = int(np.argmax(curve))
    assert result.offset == 15 - best and result.best_score == pytest.approx(curve[best], abs=1e-5)
    assert result.curve[15] == pytest.approx(result.score, abs=1e-5)  # offset 0 is the score


def test_windows_and_mel_alignment() -> None:
    frames, mel = _clip(12, 12 * 640, seed=1)
    windows = expert_windows(frames)
    assert windows.shape == (8, 5, 96, 96, 3)
    for v in range(8):
        assert torch.equal(windows[v], frames[v : v + 5])
    mels = tf_audio.mel_windows(mel, 8, FPS)
    for v in range(8):
        assert np.array_equal(mels[v], mel[:, int(80 * v / FPS) : int(80 * v / FPS) + 16])
    for fps in (25.0, 29.97, 30.0, 24.0, 100.0):
        for n_mel in range(0, 120, 7):
            brute = sum(int(i * (80.0 / fps)) + 16 <= n_mel for i in range(200))
            assert n_full_mel_windows(n_mel, fps) == brute, (fps, n_mel)


def test_offset_search_finds_a_planted_shift() -> None:
    """Video window v made equal to audio frame v - 3: the video lags the audio by 3 frames."""
    torch.manual_seed(0)
    audio = F.normalize(torch.randn(20, 512, dtype=torch.float64), dim=1)
    video = audio[(torch.arange(20) - 3) % 20]  # windows 0-2 show audio 17-19, unpaired at offset 3
    curve = offset_curve(video, audio)
    assert int(curve.argmax()) == 15 - 3
    assert float(curve[15 - 3]) == pytest.approx(17 / 20, abs=1e-12)  # 3 windows meet the zero padding
    assert abs(float(curve[15])) < 0.2  # in sync (offset 0) these random vectors are unrelated
    # an offset beyond the clip pairs nothing: 0, as syncnet_python's zero padding gives
    assert float(offset_curve(video[:2], audio[:2], vshift=4)[0]) == 0.0


def test_short_clips_are_skipped_with_a_reason(model) -> None:
    frames, mel = _clip(4, 4 * 640, seed=2)
    result = expert_sync_for_clip(model, frames, mel)
    assert result.skipped and "no 5-frame window" in result.skipped and math.isnan(result.score)
    metric = ExpertSync(model)
    metric.update(frames, mel)
    assert int(metric.compute()["n"]) == 0 and int(metric.n_skipped) == 1
    assert math.isnan(float(metric.compute()["sync_w2l"]))


def test_two_halves_merge_to_the_one_pass_value(model) -> None:
    clips = [_clip(5 + s, (5 + s) * 640, seed=s) for s in (0, 1, 1)]
    one_pass, first, second = ExpertSync(model), ExpertSync(model), ExpertSync(model)
    for frames, mel in clips:
        one_pass.update(frames, mel)
    results = [expert_sync_for_clip(model, frames, mel) for frames, mel in clips]
    first.update(results[0])
    for result in results[1:]:
        second.update(result)
    second.merge_state(first)
    expected, merged = one_pass.compute(), second.compute()
    assert float(merged["sync_w2l"]) == pytest.approx(float(expected["sync_w2l"]), abs=1e-12)
    assert int(merged["n"]) == 3
    a, b = one_pass.per_clip(), second.per_clip()
    assert sorted(a["score"].tolist()) == pytest.approx(sorted(b["score"].tolist()), abs=1e-12)
    assert a["curve"].shape == (3, 31) and sorted(a["offset"].tolist()) == sorted(b["offset"].tolist())


def test_model_is_loaded_once_through_the_registry(metric_home, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    real = es.load_wav2lip_syncnet

    def counting(path, device="cpu"):
        calls.append(path)
        return real(path, device)

    monkeypatch.setattr(es, "load_wav2lip_syncnet", counting)
    metric = ExpertSync()
    frames, mel = _clip(6, 6 * 640, seed=6)
    metric.update(frames, mel)
    metric.update(frames, mel)
    assert calls == [metric_home] and int(metric.compute()["n"]) == 2
    override = ExpertSync(weights={"wav2lip_syncnet": metric_home})
    assert calls[-1] == metric_home and override.higher_is_better is True


def test_bad_input_names_the_metric_and_shapes(model) -> None:
    with pytest.raises(TfbenchError, match=r"sync_w2l: frames must be .*\(10, 64, 64, 3\)"):
        expert_sync_for_clip(model, torch.zeros(10, 64, 64, 3, dtype=torch.uint8), np.zeros((80, 50)))
    with pytest.raises(TfbenchError, match="sync_w2l: frames must be a uint8"):
        expert_sync_for_clip(model, torch.zeros(10, 96, 96, 3), np.zeros((80, 50)))
    with pytest.raises(TfbenchError, match=r"sync_w2l: mel must be .*\(13, 50\)"):
        expert_sync_for_clip(model, torch.zeros(10, 96, 96, 3, dtype=torch.uint8), np.zeros((13, 50)))
    with pytest.raises(TfbenchError, match="mel"):
        ExpertSync(model).update(torch.zeros(10, 96, 96, 3, dtype=torch.uint8))
    nan = float("nan")
    skipped = ExpertSyncResult(nan, None, nan, (), (), 0, 3, 0, "too short")
    assert skipped.as_dict()["curve"] == []
