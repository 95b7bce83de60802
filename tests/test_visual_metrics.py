"""SSIM, PSNR and LPIPS against scikit-image and the lpips package, frame by frame; aggregation; bad input.

LPIPS weights: a random torchvision AlexNet written as `alexnet-owt-7be5be79.pth` in a temporary torch
hub, where both tfbench (through the weights registry) and lpips (through torchvision) find it. Nothing is
downloaded.
"""

from __future__ import annotations

import dataclasses

import lpips
import numpy as np
import pytest
import torch
import torchvision
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from tfbench import weights
from tfbench.errors import TfbenchError, WeightsError
from tfbench.metrics.perceptual import LPIPS, build_lpips, lpips_per_frame
from tfbench.metrics.visual import PSNR, SSIM, check_frame_pair, psnr_per_frame, ssim_per_frame

SKIMAGE_OPTIONS = {
    "skimage": {},
    "gaussian": {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False},
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: the CPU is shared, and OpenMP threads waiting on each other under contention
    made convolutions several times slower here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _structured(seed: int, n: int = 4, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth crops of a photograph (flat and textured areas) and a degraded copy: shifted, noisy."""
    rng = np.random.default_rng(seed)
    image = skdata.astronaut()
    gt = np.stack([image[100 + 7 * i : 100 + 7 * i + size, 150 : 150 + size] for i in range(n)])
    shifted = np.stack([image[101 + 7 * i : 101 + 7 * i + size, 151 : 151 + size] for i in range(n)])
    pred = shifted.astype(np.int16) + rng.integers(-12, 13, shifted.shape)
    return gt, pred.clip(0, 255).astype(np.uint8)


def _random(seed: int, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 256, (n, 40, 52, 3), dtype=np.uint8)
    pred = (gt.astype(np.int16) + rng.integers(-60, 61, gt.shape)).clip(0, 255).astype(np.uint8)
    return gt, pred


PAIRS = {"random": _random(0), "structured": _structured(1)}


@pytest.mark.parametrize("variant", ["skimage", "gaussian"])
@pytest.mark.parametrize("kind", ["random", "structured"])
def test_ssim_equals_scikit_image(variant: str, kind: str) -> None:
    gt, pred = PAIRS[kind]
    reference = [
        structural_similarity(g, p, data_range=255, channel_axis=-1, **SKIMAGE_OPTIONS[variant])
        for g, p in zip(gt, pred, strict=True)
    ]
    ours = ssim_per_frame(torch.from_numpy(pred), torch.from_numpy(gt), variant)  # type: ignore[arg-type]
    assert ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), reference, rtol=0, atol=1e-4)  # measured: 4e-15
    assert 0.05 < min(reference) < max(reference) < 0.99
    channels_first = ssim_per_frame(
        torch.from_numpy(pred).permute(0, 3, 1, 2), torch.from_numpy(gt).permute(0, 3, 1, 2)
    )
    if variant == "skimage":
        torch.testing.assert_close(channels_first, ours, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["random", "structured"])
def test_psnr_equals_scikit_image(kind: str) -> None:
    gt, pred = PAIRS[kind]
    reference = [peak_signal_noise_ratio(g, p, data_range=255) for g, p in zip(gt, pred, strict=True)]
    ours = psnr_per_frame(torch.from_numpy(pred), torch.from_numpy(gt))
    np.testing.assert_allclose(ours.numpy(), reference, rtol=0, atol=1e-4)  # measured: 0


def test_psnr_does_not_wrap_uint8_differences() -> None:
    gt = torch.full((1, 8, 8, 3), 255, dtype=torch.uint8)
    pred = torch.zeros_like(gt)
    wrapped = float(
        10 * torch.log10(255.0**2 / (pred - gt).double().square().mean())
    )  # 0 - 255 == 1 in uint8
    assert wrapped == pytest.approx(48.13, abs=0.01)
    assert (
        float(psnr_per_frame(pred, gt)[0]) == 0.0 == peak_signal_noise_ratio(gt[0].numpy(), pred[0].numpy())
    )
    half = gt.clone()
    half[:, :4] = 0  # half the pixels off by 255 (1 after wrapping), half exact: MSE 255^2 / 2
    assert float(psnr_per_frame(pred, half)[0]) == pytest.approx(10 * np.log10(2), abs=1e-12)


def test_identical_frames_have_infinite_psnr_kept_in_the_means() -> None:
    gt, pred = _random(2, n=2)
    same, diff = torch.from_numpy(gt), torch.from_numpy(pred)
    with np.errstate(divide="ignore"):
        assert peak_signal_noise_ratio(gt[0], gt[0], data_range=255) == np.inf  # scikit-image's convention
    assert psnr_per_frame(same, same).tolist() == [float("inf")] * 2
    metric = PSNR()
    metric.update(diff, same)
    metric.update(torch.cat([diff[:1], same[1:]]), same)  # one identical frame: the video's mean is inf
    assert metric.per_video()[1] == float("inf") and float(metric.compute()["psnr"]) == float("inf")


def test_the_dataset_value_is_the_mean_of_per_video_means() -> None:
    gt, pred = (torch.from_numpy(a) for a in _random(3, n=4))
    frames = psnr_per_frame(pred, gt)
    metric = PSNR()
    metric.update(pred[:1], gt[:1])  # a 1-frame video and a 3-frame video weigh the same
    metric.update(pred[1:], gt[1:])
    expected = (frames[0] + frames[1:].mean()) / 2
    torch.testing.assert_close(metric.compute()["psnr"], expected)
    assert not torch.isclose(metric.compute()["psnr"], frames.mean())
    torch.testing.assert_close(metric.per_video(), torch.stack([frames[0], frames[1:].mean()]))
    assert int(metric.compute()["n"]) == 2 and int(metric.n_frames) == 4


@pytest.mark.parametrize("metric_class", [SSIM, PSNR])
def test_two_halves_merge_to_the_one_pass_value(metric_class: type[SSIM] | type[PSNR]) -> None:
    videos = [tuple(torch.from_numpy(a) for a in _random(seed, n=2 + seed)) for seed in range(4)]
    one_pass, halves = metric_class(), [metric_class(), metric_class()]
    for i, (gt, pred) in enumerate(videos):
        one_pass.update(pred, gt)
        halves[i // 2].update(pred, gt)
    halves[1].merge_state(halves[0])  # merge_state puts the incoming state's videos first
    key = metric_class.key
    torch.testing.assert_close(halves[1].compute()[key], one_pass.compute()[key], rtol=1e-15, atol=0)
    torch.testing.assert_close(halves[1].per_video(), one_pass.per_video(), rtol=0, atol=0)
    assert metric_class.higher_is_better is True


@pytest.mark.parametrize(
    ("preds", "target", "match"),
    [
        (torch.zeros(3, 16, 16, 3), torch.zeros(3, 16, 16, 3), "SSIM: frames must be uint8 RGB"),
        (
            torch.zeros(3, 16, 16, 3, dtype=torch.uint8),
            torch.zeros(4, 16, 16, 3, dtype=torch.uint8),
            "frame count",
        ),
        (
            torch.zeros(3, 16, 16, 3, dtype=torch.uint8),
            torch.zeros(3, 16, 17, 3, dtype=torch.uint8),
            "differ in shape",
        ),
        (
            torch.zeros(3, 16, 16, dtype=torch.uint8),
            torch.zeros(3, 16, 16, dtype=torch.uint8),
            r"got \(3, 16, 16\)",
        ),
        (np.zeros((3, 16, 16, 3), np.uint8), torch.zeros(3, 16, 16, 3, dtype=torch.uint8), "torch.Tensor"),
        (
            torch.zeros(3, 6, 16, 3, dtype=torch.uint8),
            torch.zeros(3, 6, 16, 3, dtype=torch.uint8),
            "7x7 window",
        ),
    ],
)
def test_bad_input_is_a_clear_error(preds, target, match: str) -> None:
    with pytest.raises(TfbenchError, match=match):
        SSIM().update(preds, target)
    with pytest.raises(TfbenchError, match="unknown variant 'ms'"):
        SSIM(variant="ms")  # type: ignore[arg-type]
    with pytest.raises(TfbenchError, match=r"PSNR: .* \(2, 8, 8, 3\) vs \(3, 8, 8, 3\)"):
        check_frame_pair(torch.zeros(2, 8, 8, 3), torch.zeros(3, 8, 8, 3), "PSNR")


@pytest.fixture(scope="module")
def alexnet_hub(tmp_path_factory: pytest.TempPathFactory):
    """A torch hub holding a random torchvision AlexNet as `alexnet-owt-7be5be79.pth`; yields its state."""
    root = tmp_path_factory.mktemp("torch_home")
    patch = pytest.MonkeyPatch()
    patch.setenv("TORCH_HOME", str(root))
    patch.setenv("TFBENCH_HOME", str(root / "tfbench"))
    # A random file cannot have the real file's size, should the registry ever record one: drop it.
    original = weights.spec
    patch.setattr(weights, "spec", lambda name: dataclasses.replace(original(name), size=None))
    path = weights.expected_path("lpips_alex")
    assert root in path.parents and path.name == "alexnet-owt-7be5be79.pth"
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    state = torchvision.models.alexnet().state_dict()
    torch.save(state, path)
    yield state
    patch.undo()


@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum):UserWarning")  # lpips' torchvision call
def test_lpips_equals_the_lpips_package(alexnet_hub) -> None:
    gt, pred = _structured(4, n=3)
    metric = LPIPS()  # the registry's lpips_alex file
    metric.update(torch.from_numpy(pred), torch.from_numpy(gt))
    ours = lpips_per_frame(metric.model, torch.from_numpy(pred), torch.from_numpy(gt))
    reference_model = lpips.LPIPS(
        net="alex", version="0.1", verbose=False
    )  # its trunk: torchvision, same file
    torch.testing.assert_close(reference_model.net.slice5[0].weight, alexnet_hub["features.10.weight"])
    with torch.no_grad():
        reference = torch.cat(
            [
                reference_model(lpips.im2tensor(p), lpips.im2tensor(g)).flatten()
                for p, g in zip(pred, gt, strict=True)
            ]
        )
    np.testing.assert_allclose(ours.numpy(), reference.double().numpy(), rtol=0, atol=1e-5)  # measured: 3e-9
    assert float(reference.min()) > 0
    torch.testing.assert_close(metric.compute()["lpips"], ours.mean())
    assert LPIPS.higher_is_better is False and metric.per_video().shape == (1,)


def test_lpips_missing_backbone_is_the_registry_error_without_download(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("TFBENCH_HOME", str(tmp_path / "home"))

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", no_download)  # torchvision's own
    with pytest.raises(
        WeightsError, match=r"'lpips_alex' .* not found .*tfbench weights fetch lpips_alex"
    ) as info:
        LPIPS()
    assert "\n" not in str(info.value)


def test_lpips_rejects_a_file_of_another_network(alexnet_hub) -> None:
    state = dict(alexnet_hub)
    del state["features.10.bias"]
    with pytest.raises(WeightsError, match=r"lack 'features\.10\.bias'"):
        build_lpips(state)
    state["features.10.bias"] = torch.zeros(3)
    with pytest.raises(WeightsError, match=r"'features.10.bias' has shape \(3,\), expected \(256,\)"):
        build_lpips(state)
