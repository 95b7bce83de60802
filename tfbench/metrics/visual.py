"""SSIM and PSNR of generated frames against ground-truth frames, per frame, then per video, then per dataset.

Conventions (DESIGN.md section 4): uint8 RGB face crops, data_range 255, one value per frame, the mean over a
video's frames as the video's value, the mean over videos as the dataset value (a long video counts as much as
a short one).

PSNR is computed in float64: the difference of two uint8 tensors wraps modulo 256 (0 - 255 = 1), a bug seen
in peer evaluation code. Identical frames have zero error and an infinite PSNR, as in scikit-image
(`peak_signal_noise_ratio`) and torchmetrics; tfbench keeps the infinity rather than capping it at an
arbitrary number, so a video with an identical frame has an infinite mean, and so does the dataset mean: a
copy of the ground truth is reported as what it is, and a capped value can never pass for a measured one.

SSIM variants are data (`SSIM_VARIANTS`), chosen by name:
- `skimage` (default): scikit-image's `structural_similarity` defaults on RGB: a 7x7 uniform window,
  K1 0.01, K2 0.03, sample covariance (N / (N - 1)), the mean over channels;
- `gaussian`: Wang et al. 2004 as scikit-image implements it with `gaussian_weights=True`: an 11x11
  Gaussian window (sigma 1.5, truncated at 3.5 sigma), population covariance.
scikit-image filters the whole image with reflected borders and then drops a border of half a window
before averaging, so every value it averages comes from a window lying inside the image; a "valid"
separable filter computes exactly those values, with no padding (here as products with banded matrices,
which run as GEMMs on CPU and GPU alike). The local moments are computed in float64:
E[x^2] - E[x]^2 cancels badly in float32 for values up to 255.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from tfbench.errors import TfbenchError

__all__ = [
    "DATA_RANGE",
    "PSNR",
    "SSIM",
    "SSIM_VARIANTS",
    "FramePairMetric",
    "SSIMSpec",
    "SSIMVariant",
    "VideoMeanMetric",
    "check_frame_pair",
    "frames_nchw",
    "psnr_per_frame",
    "ssim_per_frame",
]

DATA_RANGE = 255.0
"""The dynamic range of uint8 frames, used by SSIM's constants and PSNR's peak."""
DEFAULT_BATCH_SIZE = 16
"""Frames per batch in SSIM: bounds memory (5 float64 maps per frame) without changing any value."""

SSIMVariant = Literal["skimage", "gaussian"]


@dataclass(frozen=True)
class SSIMSpec:
    """One SSIM convention: the window, the constants and the covariance estimator."""

    window: int  # side of the square window (odd)
    gaussian: bool  # Gaussian weights (sigma) instead of a uniform window
    sigma: float
    k1: float
    k2: float
    sample_covariance: bool  # N / (N - 1) normalisation of the local (co)variances

    def kernel(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        """The separable 1-D window, normalised to sum 1 (scipy's uniform_filter / gaussian_filter1d)."""
        if not self.gaussian:
            return torch.full((self.window,), 1.0 / self.window, dtype=dtype, device=device)
        x = torch.arange(self.window, dtype=dtype, device=device) - (self.window - 1) / 2
        w = torch.exp(-0.5 * x**2 / self.sigma**2)
        return w / w.sum()


SSIM_VARIANTS: dict[str, SSIMSpec] = {
    "skimage": SSIMSpec(window=7, gaussian=False, sigma=0.0, k1=0.01, k2=0.03, sample_covariance=True),
    # scikit-image: radius int(3.5 * 1.5 + 0.5) = 5, so an 11x11 window
    "gaussian": SSIMSpec(window=11, gaussian=True, sigma=1.5, k1=0.01, k2=0.03, sample_covariance=False),
}
"""The named SSIM conventions; `skimage` is the default."""


def frames_nchw(frames: Tensor, metric: str) -> Tensor:
    """Check that `frames` is a non-empty uint8 RGB clip, (T, H, W, 3) or (T, 3, H, W); return (T, 3, H, W).

    Raises:
        TfbenchError: naming `metric`, for a non-tensor, a dtype other than uint8, or another shape.
    """
    if not isinstance(frames, Tensor):
        raise TfbenchError(f"{metric}: frames must be a torch.Tensor, got {type(frames).__name__}")
    if frames.dtype != torch.uint8:
        raise TfbenchError(f"{metric}: frames must be uint8 RGB (0-255), got {frames.dtype}")
    if frames.ndim != 4 or 3 not in (frames.shape[1], frames.shape[3]) or frames.shape[0] == 0:
        shape = tuple(frames.shape)
        raise TfbenchError(
            f"{metric}: frames must be a non-empty (T, H, W, 3) or (T, 3, H, W) clip, got {shape}"
        )
    return frames if frames.shape[1] == 3 else frames.permute(0, 3, 1, 2)


def check_frame_pair(preds: Tensor, target: Tensor, metric: str) -> tuple[Tensor, Tensor]:
    """Check a generated clip against its ground truth (same layout, shape and frame count, uint8).

    Returns both as (T, 3, H, W) views. The runner, not the metric, decides how clips of different
    lengths are trimmed (and records it): a metric fed mismatched clips raises.
    """
    if isinstance(preds, Tensor) and isinstance(target, Tensor) and preds.shape != target.shape:
        what = "frame count" if preds.shape[1:] == target.shape[1:] else "shape"
        raise TfbenchError(
            f"{metric}: generated and ground-truth clips differ in {what}: "
            f"{tuple(preds.shape)} vs {tuple(target.shape)}"
        )
    return frames_nchw(preds, metric), frames_nchw(target, metric)


def psnr_per_frame(preds: Tensor, target: Tensor) -> Tensor:
    """PSNR of each frame, data_range 255, computed in float64; +inf for identical frames.

    `10 * log10(255^2 / MSE)` with the MSE over all pixels and channels of a frame, as scikit-image's
    `peak_signal_noise_ratio(target, pred, data_range=255)`.

    Args:
        preds, target: uint8 clips, (T, H, W, 3) or (T, 3, H, W), the same shape.

    Returns:
        (T,) float64 on the frames' device.

    Example:
        >>> a = torch.zeros(1, 8, 8, 3, dtype=torch.uint8)
        >>> round(float(psnr_per_frame(a + 1, a)[0]), 2)
        48.13
    """
    p, t = check_frame_pair(preds, target, "PSNR")
    mse = (p.double() - t.double()).square().flatten(1).mean(dim=1)
    return 10.0 * torch.log10(DATA_RANGE**2 / mse)  # mse 0 -> +inf, as scikit-image


def _band(k: Tensor, n: int) -> Tensor:
    """The (n, n - K + 1) matrix B with B[j + i, j] = k[i]: `x @ B` filters the rows of x with no padding."""
    m = n - k.numel() + 1
    band = torch.zeros(n, m, dtype=k.dtype, device=k.device)
    cols = torch.arange(m, device=k.device)
    for i, weight in enumerate(k):
        band[cols + i, cols] = weight
    return band


def _ssim_batch(p: Tensor, t: Tensor, spec: SSIMSpec) -> Tensor:
    """Mean SSIM map of each (B, C, H, W) float64 pair over channels and the valid positions."""
    k = spec.kernel(p.dtype, p.device)
    moments = torch.cat([p, t, p * p, t * t, p * t], dim=1)
    # separable "valid" filtering as two products with banded matrices: float64 depthwise conv2d has no
    # fast CPU kernel (5x slower than this here), a GEMM does
    moments = torch.matmul(_band(k, p.shape[2]).T, moments @ _band(k, p.shape[3]))
    ux, uy, uxx, uyy, uxy = moments.chunk(5, dim=1)
    n = spec.window**2
    cov_norm = n / (n - 1) if spec.sample_covariance else 1.0
    c1, c2 = (spec.k1 * DATA_RANGE) ** 2, (spec.k2 * DATA_RANGE) ** 2
    uxuy, ux2_uy2 = ux * uy, ux * ux + uy * uy
    # vx + vy = cov_norm * (uxx + uyy - ux^2 - uy^2), vxy = cov_norm * (uxy - ux * uy)
    num = (2 * uxuy + c1) * (2 * cov_norm * (uxy - uxuy) + c2)
    den = (ux2_uy2 + c1) * (cov_norm * (uxx + uyy - ux2_uy2) + c2)
    s = num / den
    return s.flatten(1).mean(dim=1)


def ssim_per_frame(
    preds: Tensor, target: Tensor, variant: SSIMVariant = "skimage", batch_size: int = DEFAULT_BATCH_SIZE
) -> Tensor:
    """SSIM of each frame under the named convention (see the module docstring), batched.

    Equals `skimage.metrics.structural_similarity(target, pred, data_range=255, channel_axis=-1, ...)`
    with the variant's options, frame by frame.

    Args:
        preds, target: uint8 clips, (T, H, W, 3) or (T, 3, H, W), the same shape, at least a window wide.
        variant: a key of `SSIM_VARIANTS`.
        batch_size: frames per batch (memory only).

    Returns:
        (T,) float64 on the frames' device.

    Example:
        >>> a = torch.randint(0, 256, (2, 16, 16, 3), dtype=torch.uint8)
        >>> ssim_per_frame(a, a).tolist()
        [1.0, 1.0]
    """
    p, t = check_frame_pair(preds, target, "SSIM")
    if variant not in SSIM_VARIANTS:
        raise TfbenchError(f"SSIM: unknown variant {variant!r}; choose one of {', '.join(SSIM_VARIANTS)}")
    spec = SSIM_VARIANTS[variant]
    if min(p.shape[2:]) < spec.window:
        raise TfbenchError(
            f"SSIM ({variant}): frames of {tuple(p.shape[2:])} pixels are smaller than its "
            f"{spec.window}x{spec.window} window"
        )
    parts = [
        _ssim_batch(pb.double(), tb.double(), spec)
        for pb, tb in zip(p.split(batch_size), t.split(batch_size), strict=True)
    ]
    return torch.cat(parts)


class VideoMeanMetric(Metric):
    """Base of the per-video metrics: the mean over videos of each video's value.

    Subclasses set `key` and implement `update` (adding each video with `_add_video`). State: the sum of
    the per-video values and the video count (`dist_reduce_fx="sum"`), the frames seen, and the per-video
    values (`"cat"`), so two halves of a dataset, or several processes, merge into exactly the one-pass value.
    """

    key: ClassVar[str]
    is_differentiable = False
    full_state_update = False

    value_sum: Tensor
    count: Tensor
    n_frames: Tensor
    values: list[Tensor]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("value_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_frames", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("values", [], dist_reduce_fx="cat")

    def _add_video(self, mean: Tensor, n_frames: int) -> None:
        """Add one video's value (the mean over its frames) and its frame count to the state."""
        mean = mean.to(self.value_sum)
        self.value_sum += mean
        self.count += 1
        self.n_frames += n_frames
        self.values.append(mean.reshape(1))

    def compute(self) -> dict[str, Tensor]:
        """{key: mean over videos of the per-video means, "n": videos}; NaN when no video was added."""
        return {self.key: self.value_sum / self.count, "n": self.count.clone()}

    def per_video(self) -> Tensor:
        """The per-video means, in update order (process by process after a distributed sync)."""
        values = self.values
        if isinstance(values, Tensor):  # after a distributed sync the list is one tensor
            return values
        return dim_zero_cat(values) if values else torch.zeros(0, dtype=torch.float64)


class FramePairMetric(VideoMeanMetric):
    """A full-reference metric computed per frame pair: subclasses implement `_per_frame`."""

    @abstractmethod
    def _per_frame(self, preds: Tensor, target: Tensor) -> Tensor:
        """The metric of each generated/ground-truth frame pair, (T,)."""

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add one video: its generated frames and the ground-truth frames, uint8, the same shape."""
        per_frame = self._per_frame(preds, target)
        self._add_video(per_frame.mean(), per_frame.numel())


class PSNR(FramePairMetric):
    """PSNR in dB (higher is better), per frame in float64, averaged per video, then over videos.

    Identical frames give +inf (scikit-image's convention, kept: see the module docstring).

    Example:
        >>> metric = PSNR()
        >>> a = torch.zeros(3, 8, 8, 3, dtype=torch.uint8)
        >>> metric.update(a + 1, a)
        >>> round(float(metric.compute()["psnr"]), 2)
        48.13
    """

    key = "psnr"
    higher_is_better = True
    DIRECTIONS: ClassVar[dict[str, bool]] = {"psnr": True}
    plot_lower_bound = 0.0

    def _per_frame(self, preds: Tensor, target: Tensor) -> Tensor:
        return psnr_per_frame(preds, target)


class SSIM(FramePairMetric):
    """SSIM (higher is better) under a named convention, per frame, averaged per video, then over videos.

    Args:
        variant: a key of `SSIM_VARIANTS` (default `skimage`); kept as `self.variant` to store beside
            the number.
        batch_size: frames per batch (memory only).
    """

    key = "ssim"
    higher_is_better = True
    DIRECTIONS: ClassVar[dict[str, bool]] = {"ssim": True}
    plot_lower_bound = -1.0
    plot_upper_bound = 1.0

    def __init__(
        self, variant: SSIMVariant = "skimage", batch_size: int = DEFAULT_BATCH_SIZE, **kwargs: Any
    ) -> None:
        if variant not in SSIM_VARIANTS:
            raise TfbenchError(f"SSIM: unknown variant {variant!r}; choose one of {', '.join(SSIM_VARIANTS)}")
        super().__init__(**kwargs)
        self.variant: SSIMVariant = variant
        self.batch_size = batch_size

    def _per_frame(self, preds: Tensor, target: Tensor) -> Tensor:
        return ssim_per_frame(preds, target, self.variant, self.batch_size)
