"""FID: parity with pytorch-fid's own functions, exact merging, reference statistics, resize modes, bad input.

Weights: a random FID InceptionV3 written in the real file format (a state_dict) at the real path, in a
temporary torch hub. Nothing is downloaded. Most tests use pytorch-fid's 64-d features (its `--dims 64`,
the first block: cheap on CPU, and a 64x64 `sqrtm`); the 2048-d statistics are checked against pytorch-fid
too, and the full 2048-d FID (two 2048x2048 `sqrtm`s, about a minute of CPU) is a `slow` test.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from pytorch_fid import inception as pytorch_fid_inception
from pytorch_fid.fid_score import calculate_frechet_distance, get_activations
from skimage import data as skdata

from tfbench import weights
from tfbench.errors import TfbenchError, WeightsError
from tfbench.metrics.fid import (
    FID,
    FIDStats,
    build_fid_inception,
    fid_cache_key,
    fid_features,
    load_fid_inception,
    load_fid_stats,
    save_fid_stats,
)

N_FRAMES, SIZE = 8, 96


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: the CPU is shared, and OpenMP threads waiting on each other under contention
    made InceptionV3 five times slower here. Results are compared within one setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_fid_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state_dict of pytorch-fid's FID InceptionV3, in the layout of pt_inception-...pth.

    `fid_inception_v3` is built with its weight loading skipped; convolutions get He-normal weights, so
    pool3 features are O(0.1-1) like the real network's (PyTorch's default init makes them ~1e-8).
    """
    torch.manual_seed(seed)
    with (
        mock.patch.object(torchvision.models.inception.Inception3, "load_state_dict", lambda *a, **k: None),
        mock.patch.object(pytorch_fid_inception, "load_state_dict_from_url", lambda *a, **k: {}),
    ):
        net = pytorch_fid_inception.fid_inception_v3()
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return net.state_dict()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    """A torch hub (TORCH_HOME) holding a random `pt_inception-2015-12-05-6726825d.pth`; yields its path."""
    root = tmp_path_factory.mktemp("torch_home")
    patch = pytest.MonkeyPatch()
    patch.setenv("TORCH_HOME", str(root))
    patch.setenv("TFBENCH_HOME", str(root / "tfbench"))
    # The registry checks the real file's size (95628359 bytes), which a random file cannot have: drop it.
    original = weights.spec
    patch.setattr(weights, "spec", lambda name: dataclasses.replace(original(name), size=None))
    path = weights.expected_path("fid_inception")
    assert root in path.parents and path.name == "pt_inception-2015-12-05-6726825d.pth"
    path.parent.mkdir(parents=True)
    torch.save(random_fid_inception_state(), path)
    yield path
    patch.undo()


def _clip(image: np.ndarray, seed: int, noise: int) -> torch.Tensor:
    """N_FRAMES 96x96 uint8 crops of `image` drifting by a pixel per frame, plus uniform noise."""
    rng = np.random.default_rng(seed)
    crops = np.stack([image[40 + i : 40 + i + SIZE, 60 + 2 * i : 60 + 2 * i + SIZE] for i in range(N_FRAMES)])
    noisy = crops.astype(np.int16) + rng.integers(-noise, noise + 1, crops.shape)
    return torch.from_numpy(noisy.clip(0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def clips() -> dict[bool, list[torch.Tensor]]:
    """Two ground-truth clips (real=True) and two generated ones: the same crops, noisier."""
    images = [skdata.astronaut(), skdata.chelsea()]
    return {
        True: [_clip(img, seed, 2) for seed, img in enumerate(images)],
        False: [_clip(img, 10 + seed, 40) for seed, img in enumerate(images)],
    }


@pytest.fixture(scope="module")
def model64(hub: Path):
    """The 64-d network in channels_last, the layout `FID` runs it in by default."""
    return load_fid_inception(dims=64)[0].to(memory_format=torch.channels_last)


@pytest.fixture(scope="module")
def features64(model64, clips) -> dict[bool, list[torch.Tensor]]:
    """tfbench's 64-d features of every clip, extracted once."""
    return {real: [fid_features(model64, clip) for clip in side] for real, side in clips.items()}


@pytest.fixture(scope="module")
def fid64(model64, features64) -> FID:
    """The 64-d FID metric updated clip by clip with every clip's features, computed once."""
    metric = FID(model=model64, dims=64)
    for real, side in features64.items():
        for features in side:
            metric.update(features, real=real)
    metric.compute()
    return metric


def _png_files(frames: list[torch.Tensor], folder: Path) -> list[Path]:
    """The frames as PNG files (lossless), the input pytorch-fid's loader expects."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, frame in enumerate(torch.cat(frames)):
        files.append(folder / f"{i:04d}.png")
        Image.fromarray(frame.numpy()).save(files[-1])
    return files


def _pytorch_fid(model, frames: list[torch.Tensor], folder: Path, dims: int):
    """pytorch-fid's own route: image files -> ImagePathDataset + ToTensor -> `get_activations` -> numpy
    mean and covariance (the body of its `calculate_activation_statistics`), with a copy of the network
    in pytorch-fid's contiguous layout."""
    reference = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    files = _png_files(frames, folder)
    act = get_activations(files, reference, batch_size=50, dims=dims, device="cpu", num_workers=0)
    return act, np.mean(act, axis=0), np.cov(act, rowvar=False), reference


def test_fid_equals_pytorch_fid_functions(fid64: FID, features64, clips, tmp_path: Path) -> None:
    act_r, mu_r, sigma_r, contiguous = _pytorch_fid(fid64.model, clips[True], tmp_path / "real", 64)
    _, mu_f, sigma_f, _ = _pytorch_fid(fid64.model, clips[False], tmp_path / "fake", 64)
    reference = calculate_frechet_distance(mu_r, sigma_r, mu_f, sigma_f)
    ours = torch.cat(features64[True]).double().numpy()
    np.testing.assert_allclose(ours, act_r, rtol=0, atol=1e-5)  # channels_last: measured 5e-7
    exact = fid_features(contiguous, clips[True][0]).double().numpy()  # pytorch-fid's layout: equal
    np.testing.assert_array_equal(exact, act_r[:N_FRAMES])
    result = fid64.compute()
    assert reference > 0.1  # the two sides really differ
    assert float(result["fid"]) == pytest.approx(reference, abs=1e-4)
    assert (int(result["n_real"]), int(result["n_fake"])) == (2 * N_FRAMES, 2 * N_FRAMES)
    mu, sigma = fid64.stats(real=True).mean_cov()
    np.testing.assert_allclose(mu, mu_r, rtol=0, atol=1e-6)
    np.testing.assert_allclose(sigma, sigma_r, rtol=0, atol=1e-7)


def test_pool3_statistics_equal_pytorch_fid(hub: Path, clips, tmp_path: Path) -> None:
    metric = FID()  # the default: 2048-d pool3, pytorch_fid resize, weights from the registry
    assert metric.weights_path == hub and metric.resize == "pytorch_fid"
    frames = clips[True][0][:4]
    metric.update(frames, real=True)
    _, mu_ref, sigma_ref, _ = _pytorch_fid(metric.model, [frames], tmp_path, 2048)
    mu, sigma = metric.stats(real=True).mean_cov()
    assert mu.shape == (2048,) and sigma.shape == (2048, 2048)
    assert float(np.abs(mu_ref).mean()) > 0.05  # features of a realistic size
    np.testing.assert_allclose(mu, mu_ref, rtol=0, atol=5e-6)  # channels_last: measured 3e-7
    np.testing.assert_allclose(sigma, sigma_ref, rtol=0, atol=5e-7)


@pytest.mark.slow
def test_pool3_fid_equals_pytorch_fid(
    hub: Path, clips, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if "slow" not in request.config.getoption("markexpr", "").replace("not slow", ""):
        pytest.skip("two 2048x2048 sqrtm, about a minute of CPU: run with -m slow")
    metric = FID()
    for real, side in clips.items():
        for clip in side:
            metric.update(clip, real=real)
    _, mu_r, sigma_r, _ = _pytorch_fid(metric.model, clips[True], tmp_path / "real", 2048)
    _, mu_f, sigma_f, _ = _pytorch_fid(metric.model, clips[False], tmp_path / "fake", 2048)
    reference = calculate_frechet_distance(mu_r, sigma_r, mu_f, sigma_f)
    assert float(metric.compute()["fid"]) == pytest.approx(reference, abs=1e-4)


def test_two_halves_merge_to_the_one_pass_value(fid64: FID, model64, clips, features64) -> None:
    halves = [FID(model=model64, dims=64) for _ in range(2)]
    for i, half in enumerate(halves):  # as two processes would: each with its own clips
        half.update(features64[True][i], real=True)
        half.update(features64[False][i], real=False)
    halves[0].merge_state(halves[1])
    for name in ("real_sum", "real_outer", "fake_sum", "fake_outer"):
        torch.testing.assert_close(getattr(halves[0], name), getattr(fid64, name), rtol=1e-12, atol=1e-12)
    assert int(halves[0].real_n) == int(fid64.real_n) == 2 * N_FRAMES
    assert float(halves[0].compute()["fid"]) == pytest.approx(float(fid64.compute()["fid"]), abs=1e-6)
    one_clip = FID(model=model64, dims=64)  # frames or their features: the same update
    one_clip.update(clips[False][1], real=False)
    torch.testing.assert_close(one_clip.fake_outer, halves[1].fake_outer, rtol=0, atol=0)


def test_fewer_than_two_frames_is_a_clear_error(model64, clips) -> None:
    metric = FID(model=model64, dims=64)
    metric.update(clips[True][0][:1], real=True)
    metric.update(clips[False][0][:3], real=False)
    with pytest.raises(TfbenchError, match=r"at least 2 frames.*got 1 real .* and 3 generated"):
        metric.compute()


def test_reference_statistics_round_trip(fid64: FID, model64, tmp_path: Path) -> None:
    key = fid_cache_key("lrs2", "test", "s3fd-96", "pytorch_fid", "ab" * 32, dims=64)
    path = save_fid_stats(tmp_path / "cache" / "lrs2_test.npz", fid64.stats(real=True, key=key))
    assert sorted(p.name for p in path.parent.iterdir()) == ["lrs2_test.npz"]  # no temporary left behind
    loaded = load_fid_stats(path, expect=key)
    assert loaded.key == key and loaded.n == 2 * N_FRAMES
    np.testing.assert_array_equal(loaded.feature_outer, fid64.real_outer.numpy())
    fresh = FID(model=model64, dims=64)  # a cached GT side plus the generated side gives the same FID
    fresh.update(loaded, real=True)
    fresh.update(fid64.stats(real=False), real=False)
    assert float(fresh.compute()["fid"]) == float(fid64.compute()["fid"])
    stale = {**key, "resize": "clean", "crop": "s3fd-224"}
    with pytest.raises(TfbenchError, match=r"computed differently.*crop.*resize"):
        load_fid_stats(path, expect=stale)
    clean = FID(model=model64, dims=64, resize="clean")
    with pytest.raises(TfbenchError, match="resize 'pytorch_fid'"):
        clean.update(loaded, real=True)


def test_clean_resize_is_recorded_and_changes_the_value(model64, features64, clips) -> None:
    # model64 resizes its input bilinearly; in clean mode its input is already 299 px, and a bilinear
    # 299 -> 299 resize is an exact copy, so it gives the features of a network built without the resize
    clean, default = FID(model=model64, dims=64, resize="clean"), FID(model=model64, dims=64)
    for real in (True, False):  # the first clip of each side
        clean.update(clips[real][0], real=real)
        default.update(features64[real][0], real=real)
    assert clean.resize == "clean" and default.resize == "pytorch_fid"
    fid_clean, fid_default = float(clean.compute()["fid"]), float(default.compute()["fid"])
    assert abs(fid_clean - fid_default) > 1e-3 * fid_default


def test_clean_resize_is_close_to_pil_bicubic(clips) -> None:
    """clean-fid resizes each channel as a float PIL image ("F" mode), bicubic, then clips to [0, 255]."""
    from tfbench.metrics.fid import _model_inputs

    frame = clips[False][0][0].numpy()
    pil = np.stack(
        [
            np.asarray(Image.fromarray(frame[:, :, c].astype(np.float32), mode="F").resize((299, 299), 3))
            for c in range(3)
        ]
    ).clip(0, 255)
    ours = _model_inputs(torch.from_numpy(frame).permute(2, 0, 1)[None], "clean")[0].numpy() * 255
    diff = np.abs(ours - pil)  # grey levels of 255; float32 rounding: measured 3e-5 mean, 1e-3 max
    assert diff.mean() < 1e-4 and diff.max() < 3e-3


def test_missing_weights_is_the_registry_error_without_download(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("TFBENCH_HOME", str(tmp_path / "home"))

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(pytorch_fid_inception, "load_state_dict_from_url", no_download)
    with pytest.raises(
        WeightsError, match=r"'fid_inception' .* not found .*tfbench weights fetch fid_inception"
    ) as info:
        FID()
    assert "\n" not in str(info.value)


def test_clean_network_and_weights_of_another_architecture(hub: Path, clips) -> None:
    state = torch.load(hub, weights_only=True)
    no_resize = build_fid_inception(state, dims=64, resize="clean")
    assert not no_resize.resize_input
    with pytest.raises(TfbenchError, match=r"resize 'pytorch_fid' needs .* resize_input=True"):
        fid_features(no_resize, clips[True][0][:1], resize="pytorch_fid")
    state["Mixed_7c.branch1x1.conv.weight"] = torch.zeros(3, 3, 1, 1)
    with pytest.raises(WeightsError, match=r"do not fit .*Mixed_7c\.branch1x1\.conv\.weight"):
        build_fid_inception(state, dims=64)


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        (torch.zeros(4, SIZE, SIZE, 3), "must be uint8"),
        (
            torch.zeros(4, SIZE, SIZE, dtype=torch.uint8),
            r"\(T, H, W, 3\) or \(T, 3, H, W\) clip, got \(4, 96, 96\)",
        ),
        (torch.zeros(0, SIZE, SIZE, 3, dtype=torch.uint8), "non-empty"),
        (np.zeros((4, SIZE, SIZE, 3), np.uint8), "must be a torch.Tensor"),
    ],
)
def test_bad_frames_are_rejected(model64, frames, match: str) -> None:
    with pytest.raises(TfbenchError, match=f"FID: .*{match}"):
        FID(model=model64, dims=64).update(frames, real=True)


def test_crops_of_different_sizes_are_rejected(model64, clips) -> None:
    metric = FID(model=model64, dims=64)
    metric.update(clips[True][0][:2], real=True)
    with pytest.raises(TfbenchError, match="64x64 frames after 96x96 ones"):
        metric.update(clips[False][0][:2, :64, :64], real=False)
    with pytest.raises(TfbenchError, match=r"features must be \(N, 64\)"):
        metric.update(torch.zeros(2, 2048), real=False)
    with pytest.raises(TfbenchError, match="unknown resize mode 'bilinear'"):
        FID(model=model64, dims=64, resize="bilinear")  # type: ignore[arg-type]
    with pytest.raises(TfbenchError, match="dims must be one of"):
        FID(model=model64, dims=100)
    assert FIDStats(np.zeros(2), np.zeros((2, 2)), 3).mean_cov()[1].shape == (2, 2)


def test_bf16_features_are_close_to_fp32(model64, features64, clips) -> None:
    """bf16 (opt-in) runs the network in bfloat16 autocast: measured here 3e-3 relative on these 64-d
    features (0.3% on FID-64 of the four clips, 1.6% on pool3 features), so 1e-2 is the bound."""
    ours = fid_features(model64, clips[True][0], precision="bf16")
    exact = features64[True][0]
    assert ours.dtype == torch.float32 and ours.shape == exact.shape
    relative = float((ours - exact).norm() / exact.norm())
    assert 1e-5 < relative < 1e-2  # it really ran in bfloat16, and stayed close
    with pytest.raises(TfbenchError, match="FID: unknown precision 'fp16'; choose fp32 or bf16"):
        fid_features(model64, clips[True][0][:1], precision="fp16")  # type: ignore[arg-type]


def test_precision_is_recorded_and_guards_cached_statistics(fid64: FID, model64, hub: Path) -> None:
    from tfbench.metrics.adapters import FIDClipMetric
    from tfbench.metrics.clip import MetricSettings

    key = fid_cache_key("lrs2", "test", "s3fd-96", "pytorch_fid", "ab" * 32, dims=64)
    assert key["precision"] == "fp32"
    assert (
        fid_cache_key("lrs2", "test", "s3fd-96", "pytorch_fid", "ab" * 32, 64, "bf16")["precision"] == "bf16"
    )
    fast = FID(model=model64, dims=64, precision="bf16")
    assert fast.precision == "bf16" and fid64.precision == "fp32"
    with pytest.raises(TfbenchError, match="cached statistics have precision 'fp32', not 'bf16'"):
        fast.update(fid64.stats(real=True, key=key), real=True)
    record = FIDClipMetric(MetricSettings(precision="bf16")).settings_record()
    assert record == {"fid_resize": "pytorch_fid", "fid_precision": "bf16"}
