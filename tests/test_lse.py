"""LSE-D / LSE-C: syncnet_python's S (keys, loading) and the batched algorithm against the reference loops."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings

import numpy as np
import pytest
import python_speech_features
import torch
from scipy import signal
from torch import Tensor, nn

from tfbench.errors import TfbenchError
from tfbench.metrics import LSE, LSEResult, lse_for_clip
from tfbench.metrics.lse import lse_from_embeddings, lse_windows, plan_windows, sync_curve
from tfbench.models.syncnet_python import SyncNetS, load_syncnet_v2

# The published syncnet_v2.model, from syncnet_python's SyncNetModel.S: conv/linear weights and biases,
# BatchNorm affine + running statistics (num_batches_tracked is checked separately: old files lack it).
PUBLISHED_KEYS: list[tuple[str, tuple[int, ...]]] = [
    ("netcnnaud.0.weight", (64, 1, 3, 3)),
    ("netcnnaud.0.bias", (64,)),
    ("netcnnaud.1.weight", (64,)),
    ("netcnnaud.1.bias", (64,)),
    ("netcnnaud.1.running_mean", (64,)),
    ("netcnnaud.1.running_var", (64,)),
    ("netcnnaud.4.weight", (192, 64, 3, 3)),
    ("netcnnaud.4.bias", (192,)),
    ("netcnnaud.5.weight", (192,)),
    ("netcnnaud.5.bias", (192,)),
    ("netcnnaud.5.running_mean", (192,)),
    ("netcnnaud.5.running_var", (192,)),
    ("netcnnaud.8.weight", (384, 192, 3, 3)),
    ("netcnnaud.8.bias", (384,)),
    ("netcnnaud.9.weight", (384,)),
    ("netcnnaud.9.bias", (384,)),
    ("netcnnaud.9.running_mean", (384,)),
    ("netcnnaud.9.running_var", (384,)),
    ("netcnnaud.11.weight", (256, 384, 3, 3)),
    ("netcnnaud.11.bias", (256,)),
    ("netcnnaud.12.weight", (256,)),
    ("netcnnaud.12.bias", (256,)),
    ("netcnnaud.12.running_mean", (256,)),
    ("netcnnaud.12.running_var", (256,)),
    ("netcnnaud.14.weight", (256, 256, 3, 3)),
    ("netcnnaud.14.bias", (256,)),
    ("netcnnaud.15.weight", (256,)),
    ("netcnnaud.15.bias", (256,)),
    ("netcnnaud.15.running_mean", (256,)),
    ("netcnnaud.15.running_var", (256,)),
    ("netcnnaud.18.weight", (512, 256, 5, 4)),
    ("netcnnaud.18.bias", (512,)),
    ("netcnnaud.19.weight", (512,)),
    ("netcnnaud.19.bias", (512,)),
    ("netcnnaud.19.running_mean", (512,)),
    ("netcnnaud.19.running_var", (512,)),
    ("netfcaud.0.weight", (512, 512)),
    ("netfcaud.0.bias", (512,)),
    ("netfcaud.1.weight", (512,)),
    ("netfcaud.1.bias", (512,)),
    ("netfcaud.1.running_mean", (512,)),
    ("netfcaud.1.running_var", (512,)),
    ("netfcaud.3.weight", (1024, 512)),
    ("netfcaud.3.bias", (1024,)),
    ("netcnnlip.0.weight", (96, 3, 5, 7, 7)),
    ("netcnnlip.0.bias", (96,)),
    ("netcnnlip.1.weight", (96,)),
    ("netcnnlip.1.bias", (96,)),
    ("netcnnlip.1.running_mean", (96,)),
    ("netcnnlip.1.running_var", (96,)),
    ("netcnnlip.4.weight", (256, 96, 1, 5, 5)),
    ("netcnnlip.4.bias", (256,)),
    ("netcnnlip.5.weight", (256,)),
    ("netcnnlip.5.bias", (256,)),
    ("netcnnlip.5.running_mean", (256,)),
    ("netcnnlip.5.running_var", (256,)),
    ("netcnnlip.8.weight", (256, 256, 1, 3, 3)),
    ("netcnnlip.8.bias", (256,)),
    ("netcnnlip.9.weight", (256,)),
    ("netcnnlip.9.bias", (256,)),
    ("netcnnlip.9.running_mean", (256,)),
    ("netcnnlip.9.running_var", (256,)),
    ("netcnnlip.11.weight", (256, 256, 1, 3, 3)),
    ("netcnnlip.11.bias", (256,)),
    ("netcnnlip.12.weight", (256,)),
    ("netcnnlip.12.bias", (256,)),
    ("netcnnlip.12.running_mean", (256,)),
    ("netcnnlip.12.running_var", (256,)),
    ("netcnnlip.14.weight", (256, 256, 1, 3, 3)),
    ("netcnnlip.14.bias", (256,)),
    ("netcnnlip.15.weight", (256,)),
    ("netcnnlip.15.bias", (256,)),
    ("netcnnlip.15.running_mean", (256,)),
    ("netcnnlip.15.running_var", (256,)),
    ("netcnnlip.18.weight", (512, 256, 1, 6, 6)),
    ("netcnnlip.18.bias", (512,)),
    ("netcnnlip.19.weight", (512,)),
    ("netcnnlip.19.bias", (512,)),
    ("netcnnlip.19.running_mean", (512,)),
    ("netcnnlip.19.running_var", (512,)),
    ("netfclip.0.weight", (512, 512)),
    ("netfclip.0.bias", (512,)),
    ("netfclip.1.weight", (512,)),
    ("netfclip.1.bias", (512,)),
    ("netfclip.1.running_mean", (512,)),
    ("netfclip.1.running_var", (512,)),
    ("netfclip.3.weight", (1024, 512)),
    ("netfclip.3.bias", (1024,)),
]


# ----------------------------------------------------------------------------------------- fixtures


def _clip(n_frames: int, n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Structured BGR uint8 face-like frames (T, 224, 224, 3) and int16 audio whose loudness moves a mouth."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / 16000
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t + seed)
    audio = (envelope * 8000 * np.sin(2 * np.pi * 220 * t) + rng.normal(0, 800, n_samples)).astype(np.int16)
    yy, xx = np.mgrid[0:224, 0:224]
    base = np.stack([80 + 0.3 * xx, 100 + 0.3 * yy, 140 + 0.1 * (xx + yy)], axis=-1)
    frames = np.empty((n_frames, 224, 224, 3), dtype=np.uint8)
    for i in range(n_frames):
        opening = 4 + 30 * float(envelope[min(i * 640, n_samples - 1)])
        image = base + rng.normal(0, 12, base.shape)
        mouth = (np.abs(xx - 112) < 40) & (np.abs(yy - 160) < opening / 2)
        image[mouth] = (30, 20, 60)
        frames[i] = np.clip(image, 0, 255).astype(np.uint8)
    return frames, audio


def _mfcc(audio: np.ndarray) -> np.ndarray:
    """syncnet_python's MFCC: python_speech_features defaults on the int16 samples, (13, T)."""
    return np.stack([np.array(c) for c in zip(*python_speech_features.mfcc(audio, 16000), strict=True)])


def _test_model() -> SyncNetS:
    """A random S whose convolution BatchNorms are calibrated on clip-like input (as training would leave
    them) and whose two towers share one output bias: embeddings then have the real model's scale
    (distances ~5-15) and true offsets beat the zero padding, so the curve is not degenerate."""
    torch.manual_seed(0)
    net = SyncNetS().eval()
    for tower in (net.netcnnlip, net.netcnnaud):
        for module in tower.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = None  # cumulative average: one batch sets the statistics
                module.reset_running_stats()
    frames, audio = _clip(8, 8 * 640, seed=99)
    video, mfcc_windows = lse_windows(torch.from_numpy(frames), torch.from_numpy(_mfcc(audio)))
    with torch.no_grad():
        net.netcnnlip.train()(video.float())
        net.netcnnaud.train()(mfcc_windows.float())
        net.netfclip[3].weight.mul_(0.2)
        net.netfcaud[3].weight.mul_(0.2)
        shared = torch.randn(1024) * 0.5
        net.netfclip[3].bias.copy_(shared)
        net.netfcaud[3].bias.copy_(shared)
    return net.eval()


@pytest.fixture(scope="module")
def model() -> SyncNetS:
    return _test_model()


# ----------------------------------------------------------------------------- reference transcription


def _reference_calc_pdist(feat1: Tensor, feat2: Tensor, vshift: int = 10) -> list[Tensor]:
    """syncnet_python calc_pdist, as written there."""
    win_size = vshift * 2 + 1
    feat2p = torch.nn.functional.pad(feat2, (0, 0, vshift, vshift))
    dists = []
    for i in range(0, len(feat1)):
        dists.append(
            torch.nn.functional.pairwise_distance(
                feat1[[i], :].repeat(win_size, 1), feat2p[i : i + win_size, :]
            )
        )
    return dists


def _reference_scores(dists: list[Tensor], vshift: int) -> dict[str, object]:
    """The tail of SyncNetInstance.evaluate: mdist, min, offset, conf and the framewise confidence."""
    mdist = torch.mean(torch.stack(dists, 1), 1)
    minval, minidx = torch.min(mdist, 0)
    offset = vshift - minidx
    conf = torch.median(mdist) - minval
    fdist = np.stack([dist[minidx].numpy() for dist in dists])
    fconf = torch.median(mdist).numpy() - fdist
    with warnings.catch_warnings():  # scipy warns when the kernel is longer than a short clip
        warnings.simplefilter("ignore")
        fconfm = signal.medfilt(fconf, kernel_size=9)
    return {
        "min_dist": minval.item(),
        "conf": conf.item(),
        "offset": int(offset),
        "curve": mdist.numpy(),
        "framewise_conf": fconfm,
    }


def _reference_evaluate(
    net: SyncNetS, images: list[np.ndarray], audio: np.ndarray, batch_size: int = 20, vshift: int = 15
) -> dict[str, object]:
    """SyncNetInstance.evaluate from its decoded inputs (BGR images as cv2 gives them, int16 audio); the
    batches go to the model's device as the reference's `.cuda()` sends them."""
    device = next(net.parameters()).device
    im = np.stack(images, axis=3)
    im = np.expand_dims(im, axis=0)
    im = np.transpose(im, (0, 3, 4, 1, 2))
    imtv = torch.from_numpy(im.astype(float)).float()
    mfcc = _mfcc(audio)
    cc = np.expand_dims(np.expand_dims(mfcc, axis=0), axis=0)
    cct = torch.from_numpy(cc.astype(float)).float()
    min_length = min(len(images), math.floor(len(audio) / 640))
    lastframe = min_length - 5
    im_feat = []
    cc_feat = []
    with torch.no_grad():
        for i in range(0, lastframe, batch_size):
            im_batch = [
                imtv[:, :, vframe : vframe + 5, :, :] for vframe in range(i, min(lastframe, i + batch_size))
            ]
            im_in = torch.cat(im_batch, 0)
            im_feat.append(net.forward_video(im_in.to(device)).data.cpu())
            cc_batch = [
                cct[:, :, :, vframe * 4 : vframe * 4 + 20]
                for vframe in range(i, min(lastframe, i + batch_size))
            ]
            cc_in = torch.cat(cc_batch, 0)
            cc_feat.append(net.forward_audio(cc_in.to(device)).data.cpu())
    dists = _reference_calc_pdist(torch.cat(im_feat, 0), torch.cat(cc_feat, 0), vshift=vshift)
    return {**_reference_scores(dists, vshift), "n_windows": lastframe}


def _assert_matches(ours: LSEResult, ref: dict[str, object]) -> None:
    assert ours.skipped is None
    assert ours.n_windows == ref["n_windows"]
    assert ours.offset == ref["offset"]
    assert ours.min_dist == pytest.approx(ref["min_dist"], abs=1e-4)
    assert ours.conf == pytest.approx(ref["conf"], abs=1e-4)
    np.testing.assert_allclose(ours.curve, ref["curve"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(ours.framewise_conf, ref["framewise_conf"], rtol=0, atol=1e-4)


# ------------------------------------------------------------------------------------------- network


def test_state_dict_matches_the_published_keys_and_shapes() -> None:
    state = SyncNetS().state_dict()
    published = dict(PUBLISHED_KEYS)
    ours = {k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert list(ours) == [k for k, _ in PUBLISHED_KEYS]
    assert ours == published
    batchnorms = {k.removesuffix(".running_mean") for k in published if k.endswith("running_mean")}
    assert {
        k.removesuffix(".num_batches_tracked") for k in state if k.endswith("num_batches_tracked")
    } == batchnorms


def test_tower_shapes() -> None:
    net = SyncNetS().eval()
    with torch.no_grad():
        assert net.forward_audio(torch.zeros(2, 1, 13, 20)).shape == (2, 1024)
        assert net.netcnnlip(torch.zeros(1, 3, 5, 224, 224)).shape == (1, 512, 1, 1, 1)


def test_load_syncnet_v2_round_trip(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(1)
    net = SyncNetS()
    path = tmp_path / "syncnet_v2.model"
    torch.save(net.state_dict(), path)
    loaded = load_syncnet_v2(path, "cpu")
    assert not loaded.training
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    # Old-format files (legacy serialisation, no num_batches_tracked) load too.
    legacy = tmp_path / "legacy.model"
    plain = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(plain, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(load_syncnet_v2(legacy).netfclip[3].weight, net.netfclip[3].weight)

    weights = pytest.importorskip("tfbench.weights")
    monkeypatch.setenv("TFBENCH_HOME", str(tmp_path / "home"))
    expected = weights.expected_path("syncnet_v2")
    expected.parent.mkdir(parents=True)
    path.rename(expected)
    # A random S cannot have the published file's byte size, which resolve checks: drop it for this file.
    original = weights.spec
    monkeypatch.setattr(weights, "spec", lambda name: dataclasses.replace(original(name), size=None))
    resolved = weights.resolve("syncnet_v2")
    assert resolved == expected
    assert torch.equal(load_syncnet_v2(resolved).netcnnaud[0].weight, net.netcnnaud[0].weight)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (
            {"netcnnaud.0.weight": torch.zeros(64, 1, 3, 5)},
            r"'netcnnaud\.0\.weight' has shape \(64, 1, 3, 5\)",
        ),
        ({"netcnnaud.0.kernel": torch.zeros(1)}, r"unexpected key 'netcnnaud\.0\.kernel'"),
        ({}, r"missing key 'netcnnaud\.0\.weight'"),
        ([torch.zeros(1)], "it holds a list"),
        (b"not a checkpoint", "not a readable torch state_dict"),
    ],
)
def test_load_syncnet_v2_rejects_a_wrong_file(tmp_path, content: object, match: str) -> None:
    path = tmp_path / "wrong.model"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(TfbenchError, match=match) as info:
        load_syncnet_v2(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(TfbenchError, match="not found"):
        load_syncnet_v2(tmp_path / "absent.model")


# ------------------------------------------------------------------------------------------ algorithm


# (frames, audio samples, layout, batch size, pass n_audio_samples): equal lengths, longer audio, and audio
# shorter than the video (640 * 14 - 40 samples: 13 frames by the reference's count). Few windows keep the
# test fast on CPU; clips longer than the 31 offsets are covered at the embedding level below.
PARITY_CLIPS = [
    (12, 12 * 640, "thwc", 20, False),
    (9, 9 * 640 + 2345, "tchw", 2, True),
    (20, 14 * 640 - 40, "tchw", 3, True),
]


@pytest.mark.parametrize(("n_frames", "n_samples", "layout", "batch_size", "pass_samples"), PARITY_CLIPS)
def test_lse_for_clip_equals_the_reference(
    model: SyncNetS, n_frames: int, n_samples: int, layout: str, batch_size: int, pass_samples: bool
) -> None:
    frames, audio = _clip(n_frames, n_samples, seed=n_frames + n_samples)
    ref = _reference_evaluate(model, list(frames), audio)
    tensor = torch.from_numpy(frames)
    if layout == "tchw":
        tensor = tensor.permute(0, 3, 1, 2)
    ours = lse_for_clip(
        model,
        tensor,
        torch.from_numpy(_mfcc(audio)),
        n_samples if pass_samples else None,
        batch_size=batch_size,
    )
    _assert_matches(ours, ref)
    assert ours.n_frames == n_frames and ours.n_frames_used == min(n_frames, n_samples // 640)
    assert len(ours.curve) == 31 and len(ours.framewise_conf) == ours.n_windows


@pytest.mark.parametrize("n_windows", [1, 7, 40, 300])
def test_sync_curve_equals_calc_pdist(n_windows: int) -> None:
    generator = torch.Generator().manual_seed(n_windows)
    video = torch.randn(n_windows, 1024, generator=generator)
    audio = torch.randn(n_windows, 1024, generator=generator)
    ref_dists = _reference_calc_pdist(video, audio, vshift=15)
    ref = {**_reference_scores(ref_dists, 15), "n_windows": n_windows}
    curve, dists = sync_curve(video, audio, vshift=15, chunk_size=16)  # several chunks for long clips
    torch.testing.assert_close(dists, torch.stack(ref_dists), rtol=0, atol=1e-4)
    torch.testing.assert_close(curve, torch.from_numpy(ref["curve"]), rtol=0, atol=1e-4)
    _assert_matches(lse_from_embeddings(video, audio), ref)


@pytest.mark.parametrize("lag", [-3, 0, 5])
def test_a_planted_offset_is_found_with_the_reference_sign(lag: int) -> None:
    """audio window k carries the video of window k - lag: the reference reports offset = -lag."""
    generator = torch.Generator().manual_seed(7)
    video = torch.randn(60, 64, generator=generator)
    audio = torch.roll(video, lag, 0) + 0.1 * torch.randn(60, 64, generator=generator)
    result = lse_from_embeddings(video, audio)
    assert result.offset == -lag
    assert result.conf > 1.0


def test_windows_are_the_reference_slices_in_every_layout() -> None:
    frames = torch.randint(0, 256, (9, 224, 224, 3), dtype=torch.uint8)
    mfcc = torch.randn(13, 35)
    video, audio = lse_windows(frames, mfcc)
    assert video.shape == (4, 3, 5, 224, 224) and audio.shape == (4, 1, 13, 20)
    assert torch.equal(video[2], frames[2:7].permute(3, 0, 1, 2))
    assert torch.equal(audio[3, 0], mfcc[:, 12:32])
    video_tchw, _ = lse_windows(frames.permute(0, 3, 1, 2), mfcc)
    assert torch.equal(video_tchw, video)
    video_rgb, _ = lse_windows(frames.flip(-1), mfcc, channel_order="rgb")
    assert torch.equal(video_rgb, video)
    with pytest.raises(TfbenchError, match="224x224"):
        lse_windows(frames[:, :112], mfcc)


def test_window_plan_follows_the_reference_lengths() -> None:
    assert plan_windows(12, 47).n_windows == 7  # equal lengths: 640 * 12 samples give 47 MFCC steps
    assert plan_windows(12, 47, 12 * 640).n_windows == 7
    assert plan_windows(20, 55, 14 * 640 - 40).n_frames_used == 13  # the reference's floor(samples / 640)
    assert plan_windows(20, 55).n_frames_used == 14  # from the MFCC alone: documented deviation
    trimmed = plan_windows(30, 47, 30 * 640)  # samples promise more audio than the MFCC holds
    assert trimmed.n_frames_used == 30 and trimmed.n_windows == 7


@pytest.mark.parametrize(("n_frames", "n_steps"), [(0, 47), (5, 47), (12, 19), (12, 22)])
def test_too_short_clips_are_skipped_with_a_reason(n_frames: int, n_steps: int) -> None:
    net = SyncNetS().eval()
    frames = torch.zeros(n_frames, 3, 224, 224, dtype=torch.uint8)
    result = lse_for_clip(net, frames, torch.zeros(13, n_steps))
    assert result.skipped is not None and "at least 6" in result.skipped
    assert math.isnan(result.min_dist) and result.offset is None and result.n_windows == 0


def test_equal_audio_and_video_length_scores_every_window(model: SyncNetS) -> None:
    frames, audio = _clip(6, 6 * 640, seed=3)
    mfcc = torch.from_numpy(_mfcc(audio))
    assert mfcc.shape[1] == 4 * 6 - 1
    for steps in (mfcc.shape[1], 4 * 6):  # 4T - 1 (equal sample counts) and exactly 4T
        padded = torch.nn.functional.pad(mfcc, (0, steps - mfcc.shape[1]))
        result = lse_for_clip(model, torch.from_numpy(frames), padded)
        assert result.skipped is None and result.n_windows == 1 and math.isfinite(result.conf)


# --------------------------------------------------------------------------------------------- metric


def test_metric_halves_merge_to_the_one_pass_result(model: SyncNetS) -> None:
    clips = [_clip(n, n * 640 + extra, seed=n) for n, extra in ((6, 0), (7, 300), (4, 0), (6, 900))]
    inputs = [(torch.from_numpy(f), torch.from_numpy(_mfcc(a))) for f, a in clips]
    one_pass = LSE(model)
    for frames, mfcc in inputs:
        one_pass.update(frames, mfcc)
    first, second = LSE(model), LSE(model)
    for frames, mfcc in inputs[:2]:
        first.update(frames, mfcc)
    for frames, mfcc in inputs[2:]:
        second.update(frames, mfcc)
    second.merge_state(first)  # the incoming state goes first
    expected, merged = one_pass.compute(), second.compute()
    assert int(expected["n"]) == 3 and int(expected["n_skipped"]) == 1
    for key in ("lse_d", "lse_c"):
        assert float(merged[key]) == pytest.approx(float(expected[key]), abs=1e-9)
    assert int(merged["n"]) == 3 and int(merged["n_skipped"]) == 1
    for key, value in one_pass.per_clip().items():
        assert torch.allclose(second.per_clip()[key], value), key
    results = [lse_for_clip(model, frames, mfcc) for frames, mfcc in inputs[:1]]
    assert float(expected["lse_d"]) != results[0].min_dist  # a mean over three clips, not the first


def test_metric_directions_and_result_updates(model: SyncNetS) -> None:
    assert LSE.DIRECTIONS == {"lse_d": False, "lse_c": True}
    assert LSE.is_differentiable is False and LSE.full_state_update is False
    assert LSE.protocol == "tfbench" and LSE.protocol_version == "1"
    metric = LSE(model)
    for value in (5.0, 7.0):
        metric.update(LSEResult(value, value / 5, 0, (value,) * 31, (), 3, 8, 8))
    out = metric.compute()
    assert float(out["lse_d"]) == pytest.approx(6.0) and float(out["lse_c"]) == pytest.approx(1.2)
    assert LSEResult(1.0, 2.0, 0, (), (), 1, 6, 6).as_dict()["protocol"] == "tfbench"


# ------------------------------------------------------------------------------------------ precision


def test_bf16_scores_are_close_to_fp32(model: SyncNetS) -> None:
    """bf16 (opt-in) runs S in bfloat16 autocast. Measured with this model: scores and curve move by 3e-4 to
    8e-3 on this 2-window clip, by up to 0.08 (1.5% of LSE-D) on a 7-window one; 0.1 is the bound."""
    frames, audio = _clip(7, 7 * 640, seed=7)
    inputs = (model, torch.from_numpy(frames), torch.from_numpy(_mfcc(audio)))
    exact, fast = lse_for_clip(*inputs), lse_for_clip(*inputs, precision="bf16")
    assert (exact.precision, fast.precision) == ("fp32", "bf16") and fast.n_windows == 2
    assert fast.offset == exact.offset
    assert fast.min_dist == pytest.approx(exact.min_dist, abs=0.1)
    assert fast.conf == pytest.approx(exact.conf, abs=0.1)
    curve_diff = np.abs(np.asarray(fast.curve) - np.asarray(exact.curve)).max()
    assert 1e-5 < curve_diff < 0.1  # it really ran in bfloat16, and stayed close
    metric = LSE(model, precision="bf16")
    metric.update(fast)
    with pytest.raises(TfbenchError, match="a fp32 result cannot join a bf16 metric"):
        metric.update(exact)
    with pytest.raises(TfbenchError, match="LSE: unknown precision 'fp16'; choose fp32 or bf16"):
        lse_for_clip(*inputs, precision="fp16")  # type: ignore[arg-type]


def test_precision_is_recorded_in_the_run_and_refused_where_unsupported(model: SyncNetS, tmp_path) -> None:
    """`tfbench score --precision bf16` records the precision beside the LSE numbers; a metric whose
    network runs only in fp32 (lpips) is refused before anything runs."""
    import yaml
    from typer.testing import CliRunner

    from tfbench.benchmark.options import RunOptions
    from tfbench.cli import app
    from tfbench.data.synthetic import SynthConfig, write_dataset

    write_dataset(tmp_path / "data", SynthConfig("lrs2", speakers=1, clips=1, seconds=0.28, seed=3))
    torch.save(model.state_dict(), tmp_path / "syncnet_v2.model")
    args = ["score", str(tmp_path / "data" / "main"), "--metrics", "lse", "--detector", "none"]
    args += ["--weights", f"syncnet_v2={tmp_path / 'syncnet_v2.model'}", "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, [*args, "--precision", "bf16", "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["precision"] == "bf16" and config["metric_settings"]["lse_precision"] == "bf16"
    assert math.isfinite(json.loads((tmp_path / "s.json").read_text())["summary"]["lse_d"]["mean"])
    refused = CliRunner().invoke(app, [*args, "--metrics", "lse,lpips", "--precision", "bf16"])
    assert refused.exit_code != 0 and "lpips cannot run in it" in refused.output
    with pytest.raises(
        TfbenchError, match=r"metric\(s\) lpips cannot run in it \(metrics that can: fid, lse, psnr, ssim\)"
    ):
        RunOptions("gt", "synthetic", tmp_path, metrics=("lse", "lpips"), precision="bf16")
    with pytest.raises(TfbenchError, match="unknown precision 'fp16'"):
        RunOptions("gt", "synthetic", tmp_path, metrics=("lse",), precision="fp16")
    record = RunOptions("gt", "synthetic", tmp_path, metrics=("lse", "psnr"), precision="bf16")
    assert record.precision == "bf16"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_scores_match_cpu(model: SyncNetS) -> None:
    frames, audio = _clip(12, 12 * 640, seed=5)
    mfcc = torch.from_numpy(_mfcc(audio))
    cpu = lse_for_clip(model, torch.from_numpy(frames), mfcc)
    gpu_model = SyncNetS().eval()
    gpu_model.load_state_dict(model.state_dict())
    gpu = lse_for_clip(gpu_model.cuda(), torch.from_numpy(frames).cuda(), mfcc.cuda())
    assert gpu.offset == cpu.offset
    assert gpu.min_dist == pytest.approx(cpu.min_dist, abs=1e-2)  # cuDNN may use TF32 convolutions
    assert gpu.conf == pytest.approx(cpu.conf, abs=1e-2)
