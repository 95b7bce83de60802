"""FID of generated face crops against ground-truth crops: pytorch-fid's network, statistics and distance.

Features are pytorch-fid's `InceptionV3` pool3 activations (2048-d) of uint8 RGB crops scaled to [0, 1],
accumulated as float64 sums (sum, sum of outer products, count), so processes and halves of a dataset merge
exactly. `compute` turns the sums into the mean and the unbiased covariance (numpy.cov's, as pytorch-fid)
and calls pytorch-fid's `calculate_frechet_distance`, real side first (`python -m pytorch_fid GT GEN`).

How a 96 px crop reaches 299 px moves FID by whole points, so the resize is a named mode, kept beside the
number (`FID.resize`, and in the key of cached reference statistics):
- `pytorch_fid` (default, comparable with papers): the network's own bilinear resize of the [0, 1] frame
  (`F.interpolate(mode="bilinear", align_corners=False)`, no antialiasing);
- `clean` (clean-fid's resize): the uint8 frame as float 0-255, resized to 299 by an antialiased bicubic
  filter (`F.interpolate(mode="bicubic", antialias=True)`, a port of PIL's, a = -0.5), clipped to [0, 255],
  scaled to [0, 1]; the network's resize is skipped. Against PIL's bicubic resize of the float image
  (clean-fid's `resize_single_channel`): float32 rounding only, 3e-5 grey levels on average, 1e-3 at most
  (tests/test_fid.py). clean-fid's network (a TorchScript TF Inception) is not used: only the resize changes.

Weights are never downloaded: `load_fid_inception` asks `tfbench.weights.resolve("fid_inception")` for the
file first (a missing one is the registry's one-line error) and hands it to pytorch-fid, whose own loader
would fetch it from the network. `FID` runs the network channels_last (1.5x faster on CPU here; features
move by ~1e-6, FID by ~1e-7); `precision="bf16"` (opt-in) runs it in bfloat16 autocast, kept beside the
number and in the stats key. scipy's `sqrtm` of a 2048x2048 matrix, inside the distance, takes about 30 s
on a 2-core CPU: `compute` runs once, at the end of a run.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, cast
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_fid import inception as pytorch_fid_inception
from pytorch_fid.fid_score import calculate_frechet_distance
from pytorch_fid.inception import InceptionV3
from torch import Tensor
from torchmetrics import Metric

from tfbench.errors import TfbenchError, WeightsError
from tfbench.fileio import atomic_path
from tfbench.metrics.precision import Precision, check_precision, forward_precision
from tfbench.metrics.visual import frames_nchw

# fmt: off
__all__ = [
    "FID", "FID_RESIZE_MODES", "FIDStats", "FidResize", "build_fid_inception", "fid_cache_key",
    "fid_features", "frechet_distance", "load_fid_inception", "load_fid_stats", "mean_cov", "save_fid_stats",
]
# fmt: on

FidResize = Literal["pytorch_fid", "clean"]
FID_RESIZE_MODES: tuple[FidResize, ...] = ("pytorch_fid", "clean")
FID_DIMS = 2048
INCEPTION_SIZE = 299
DEFAULT_BATCH_SIZE = 50
"""pytorch-fid's default `--batch-size`."""
STATS_FORMAT = "tfbench-fid-stats/1"
"""Format tag of reference-statistics files; bumped when their layout or meaning changes."""


def _check_resize(resize: str) -> FidResize:
    if resize not in FID_RESIZE_MODES:
        raise TfbenchError(f"FID: unknown resize mode {resize!r}; choose {' or '.join(FID_RESIZE_MODES)}")
    return cast(FidResize, resize)


def _check_dims(dims: int) -> int:
    if dims not in InceptionV3.BLOCK_INDEX_BY_DIM:
        choices = ", ".join(map(str, InceptionV3.BLOCK_INDEX_BY_DIM))
        raise TfbenchError(f"FID: dims must be one of pytorch-fid's {choices}, got {dims}")
    return dims


def build_fid_inception(
    state_dict: Mapping[str, Tensor], dims: int = FID_DIMS, resize: FidResize = "pytorch_fid"
) -> InceptionV3:
    """pytorch-fid's `InceptionV3` for `dims` (2048: pool3; or 64, 192, 768), weights from `state_dict`.

    pytorch-fid's `fid_inception_v3` loads its weights with `load_state_dict_from_url`; that call is
    redirected to `state_dict` (the content of `pt_inception-2015-12-05-6726825d.pth`) while the network is
    built: a scoped patch of pytorch-fid's module global, so never a download. `resize="clean"` builds it
    without its input resize. A state_dict of another architecture raises `WeightsError`, naming the keys.
    """
    block = InceptionV3.BLOCK_INDEX_BY_DIM[_check_dims(dims)]

    def from_memory(url: str, *args: Any, **kwargs: Any) -> Mapping[str, Tensor]:
        return state_dict

    with mock.patch.object(pytorch_fid_inception, "load_state_dict_from_url", from_memory):
        try:
            model = InceptionV3(
                [block], resize_input=_check_resize(resize) == "pytorch_fid", normalize_input=True
            )
        except RuntimeError as exc:  # load_state_dict's missing/unexpected keys and shape mismatches
            detail = " ".join(str(exc).split())[:400]
            raise WeightsError(f"FID: the weights do not fit pytorch-fid's InceptionV3: {detail}") from exc
    return model.eval()


def load_fid_inception(
    overrides: Mapping[str, Path] | None = None,
    dims: int = FID_DIMS,
    resize: FidResize = "pytorch_fid",
    device: torch.device | str | None = None,
) -> tuple[InceptionV3, Path]:
    """The FID network (eval mode, on `device`, default CPU) and the file of its weights: the registry's
    `fid_inception` or `--weights fid_inception=PATH`. A missing file raises the registry's `WeightsError`.
    """
    from tfbench import weights  # the registry is needed only here

    path = weights.resolve("fid_inception", dict(overrides) if overrides else None)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for a damaged or foreign file
        raise WeightsError(f"FID: cannot read the InceptionV3 weights at {path}: {exc}") from exc
    if not isinstance(state, Mapping):
        raise WeightsError(f"FID: {path} holds a {type(state).__name__}, not a state_dict")
    return build_fid_inception(state, dims, resize).to(device or "cpu"), path


def _model_inputs(
    frames: Tensor, resize: FidResize, layout: torch.memory_format = torch.contiguous_format
) -> Tensor:
    """(B, 3, H, W) uint8 -> float32 in [0, 1] in `layout`, pre-resized to 299 in `clean` mode.

    The layout is explicit: a (B, H, W, 3) clip viewed as (B, 3, H, W) is channels-last in memory, which
    changes the convolution kernels (and features by ~1e-7) against pytorch-fid's contiguous batches.
    """
    x = frames.contiguous(memory_format=layout).float()
    if resize == "pytorch_fid":
        return x.div_(255)  # torchvision's ToTensor, as pytorch-fid's loader applies it
    size = (INCEPTION_SIZE, INCEPTION_SIZE)
    x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
    return x.clamp_(0, 255).div_(255)


def fid_features(
    model: InceptionV3,
    frames: Tensor,
    resize: FidResize = "pytorch_fid",
    batch_size: int = DEFAULT_BATCH_SIZE,
    precision: Precision = "fp32",
) -> Tensor:
    """(N, dims) float32 activations of (N, H, W, 3) or (N, 3, H, W) uint8 RGB frames, on the model's device,
    as pytorch-fid's `get_activations` computes them (maps smaller than pool3 are averaged spatially).

    In `pytorch_fid` mode the model must resize its input (`resize_input=True`). The inputs take the memory
    layout of the model's weights (see `FID`'s `channels_last`); `precision` "bf16" runs the network in
    bfloat16 autocast (the features are returned as float32).
    """
    x = frames_nchw(frames, "FID")
    weight = next(model.parameters())
    channels_last = weight.is_contiguous(memory_format=torch.channels_last)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    if _check_resize(resize) == "pytorch_fid" and not model.resize_input:
        raise TfbenchError("FID: resize 'pytorch_fid' needs an InceptionV3 built with resize_input=True")
    out = []
    with torch.no_grad(), forward_precision(weight.device, check_precision(precision, "FID")):
        for chunk in x.split(batch_size):
            pred = model(_model_inputs(chunk.to(weight.device), resize, layout))[0].float()
            if pred.shape[2:] != (1, 1):
                pred = F.adaptive_avg_pool2d(pred, output_size=(1, 1))
            out.append(pred.flatten(1))
    return torch.cat(out)


def mean_cov(feature_sum: Any, feature_outer: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (numpy.cov's, divisor n - 1) from float64 sums of features; n >= 2."""
    if n < 2:
        raise TfbenchError(f"FID needs at least 2 frames on each side to estimate a covariance, got {n}")
    s = np.asarray(feature_sum, dtype=np.float64)
    mu = s / n
    sigma = (np.asarray(feature_outer, dtype=np.float64) - np.outer(s, mu)) / (n - 1)
    return mu, (sigma + sigma.T) / 2


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """pytorch-fid's `calculate_frechet_distance`; its refusal of a complex square root (too few frames
    for the feature size) becomes a TfbenchError. A singular product is retried there with 1e-6 * I."""
    with warnings.catch_warnings():  # pytorch-fid passes scipy's deprecated `disp` argument to sqrtm
        warnings.filterwarnings("ignore", message=".*disp.*", category=DeprecationWarning)
        try:
            return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))
        except ValueError as exc:
            raise TfbenchError(f"FID: the Frechet distance failed ({exc}); too few frames?") from exc


@dataclass(frozen=True)
class FIDStats:
    """One side's accumulated features: sums, count and the key saying what they were computed from."""

    feature_sum: np.ndarray  # (d,) float64
    feature_outer: np.ndarray  # (d, d) float64
    n: int
    key: Mapping[str, str] = field(default_factory=dict)

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma) as pytorch-fid's `calculate_activation_statistics` returns them."""
        return mean_cov(self.feature_sum, self.feature_outer, self.n)


def fid_cache_key(
    dataset: str, split: str, crop: str, resize: FidResize, weights_sha256: str, dims: int = FID_DIMS,
    precision: Precision = "fp32",
) -> dict[str, str]:  # fmt: skip
    """What reference statistics depend on: a cached file is reused only where every field matches.

    `crop` names the crop rule and size (e.g. "s3fd-96"): GT and generated crops must be made the same way.
    """
    return {
        "format": STATS_FORMAT,
        "dataset": dataset,
        "split": split,
        "crop": crop,
        "resize": _check_resize(resize),
        "dims": str(_check_dims(dims)),
        "precision": check_precision(precision, "FID"),
        "extractor": "pytorch_fid.InceptionV3",
        "weights_sha256": weights_sha256,
    }


def save_fid_stats(path: str | Path, stats: FIDStats) -> Path:
    """Write `stats` as an .npz (sums, count, key as JSON), atomically: a temporary file, then a rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            format=np.array(STATS_FORMAT),
            feature_sum=np.asarray(stats.feature_sum, dtype=np.float64),
            feature_outer=np.asarray(stats.feature_outer, dtype=np.float64),
            n=np.array(stats.n, dtype=np.int64),
            key=np.array(json.dumps(dict(stats.key), sort_keys=True)),
        )
    return Path(path)


def load_fid_stats(path: str | Path, expect: Mapping[str, str] | None = None) -> FIDStats:
    """Read statistics written by `save_fid_stats`; with `expect` (a `fid_cache_key`), a file whose key
    differs in any field is refused with a TfbenchError naming the fields (a stale cache)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            tag = str(f["format"])
            stats = FIDStats(f["feature_sum"], f["feature_outer"], int(f["n"]), json.loads(str(f["key"])))
    except (OSError, KeyError, ValueError) as exc:
        raise TfbenchError(f"FID statistics {path}: unreadable ({exc})") from exc
    if tag != STATS_FORMAT:
        raise TfbenchError(f"FID statistics {path}: format {tag!r}, expected {STATS_FORMAT!r}")
    want = dict(expect or {})  # None or an empty key: no check
    if want and (diff := [k for k in sorted({*want, *stats.key}) if stats.key.get(k) != want.get(k)]):
        detail = "; ".join(f"{k}: {stats.key.get(k)!r} != {want.get(k)!r}" for k in diff)
        raise TfbenchError(f"FID statistics {path} were computed differently ({detail})")
    return stats


class FID(Metric):
    """FID (lower is better) between ground-truth ("real") and generated ("fake") face crops.

    `update(x, real=...)` adds a clip's uint8 frames, features extracted elsewhere, or cached statistics
    to one side. Both sides need at least 2 frames. All crops must have one size: crops made differently
    for GT and generated frames bias FID (DESIGN.md, pitfalls). States, all float64 sums with
    `dist_reduce_fx="sum"`: `real_sum` (d,), `real_outer` (d, d), `real_n`, and the same for `fake`.

    Args:
        model: a pytorch-fid `InceptionV3` (see `build_fid_inception`); default: `load_fid_inception`.
        resize: "pytorch_fid" (default) or "clean"; kept as `self.resize`, to store beside the number.
        dims: feature size, 2048 (pool3) unless comparing with pytorch-fid's `--dims`.
        batch_size: frames per forward pass.
        weights_overrides: `--weights` overrides passed to the registry when `model` is None.
        channels_last: convert the network's weights (in place) and inputs to channels_last: 1.5x faster on
            CPU here, features within 1e-6 relative of pytorch-fid's contiguous layout, FID within ~1e-7.
        precision: "fp32" (default) or "bf16" for the network; kept as `self.precision`.
    """

    higher_is_better = False
    DIRECTIONS: ClassVar[dict[str, bool]] = {"fid": False}
    is_differentiable = False
    full_state_update = False
    plot_lower_bound = 0.0

    real_sum: Tensor
    real_outer: Tensor
    real_n: Tensor
    fake_sum: Tensor
    fake_outer: Tensor
    fake_n: Tensor

    def __init__(
        self,
        model: InceptionV3 | None = None,
        resize: FidResize = "pytorch_fid",
        dims: int = FID_DIMS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        weights_overrides: Mapping[str, Path] | None = None,
        channels_last: bool = True,
        precision: Precision = "fp32",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.resize: FidResize = _check_resize(resize)
        self.precision = check_precision(precision, "FID")
        self.dims = _check_dims(dims)
        self.weights_path: Path | None = None
        if model is None:
            model, self.weights_path = load_fid_inception(weights_overrides, dims, resize)
        layout = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.eval().to(memory_format=layout)
        self.batch_size = batch_size
        self._frame_size: str | None = None
        f64 = torch.float64
        for side in ("real", "fake"):
            self.add_state(f"{side}_sum", torch.zeros(dims, dtype=f64), dist_reduce_fx="sum")
            self.add_state(f"{side}_outer", torch.zeros(dims, dims, dtype=f64), dist_reduce_fx="sum")
            self.add_state(f"{side}_n", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _check_size(self, frames: Tensor) -> None:
        size = "x".join(map(str, frames.shape[2:]))
        if self._frame_size not in (None, size):
            raise TfbenchError(
                f"FID: {size} frames after {self._frame_size} ones; crop GT and generated alike"
            )
        self._frame_size = size

    def reset(self) -> None:
        """Clear both sides and forget the crop size seen so far."""
        super().reset()
        self._frame_size = None

    def update(self, frames: Tensor | FIDStats, real: bool) -> None:
        """Add to the real (ground-truth) or the fake (generated) side: a clip's frames ((N, H, W, 3) or
        (N, 3, H, W) uint8 RGB face crops); or (N, dims) float features extracted elsewhere with this network
        and resize (decode, crop and extract once); or cached `FIDStats` whose key agrees with this metric's
        resize and dims (in a multi-process run, in one process only: the sums are added at sync).
        """
        side = "real" if real else "fake"
        total, outer = getattr(self, f"{side}_sum"), getattr(self, f"{side}_outer")
        if isinstance(frames, FIDStats):
            n = self._check_stats(frames)
            total.add_(torch.as_tensor(frames.feature_sum, dtype=torch.float64).to(total.device))
            outer.add_(torch.as_tensor(frames.feature_outer, dtype=torch.float64).to(outer.device))
        else:
            if isinstance(frames, Tensor) and frames.is_floating_point() and frames.ndim == 2:
                features = frames
                if features.shape[1] != self.dims:
                    raise TfbenchError(f"FID: features must be (N, {self.dims}), got {tuple(features.shape)}")
            else:
                x = frames_nchw(frames, "FID")
                self._check_size(x)
                features = fid_features(self.model, x, self.resize, self.batch_size, self.precision)
            f = features.to(device=total.device, dtype=torch.float64)
            total.add_(f.sum(dim=0))
            outer.addmm_(f.T, f)
            n = f.shape[0]
        setattr(self, f"{side}_n", getattr(self, f"{side}_n") + n)

    def _check_stats(self, stats: FIDStats) -> int:
        """The count of cached statistics, after checking their key and size against this metric."""
        for name, mine in (("resize", self.resize), ("dims", str(self.dims)), ("precision", self.precision)):
            if name in stats.key and stats.key[name] != mine:
                raise TfbenchError(f"FID: cached statistics have {name} {stats.key[name]!r}, not {mine!r}")
        if np.shape(stats.feature_sum) != (self.dims,):
            raise TfbenchError(f"FID: cached statistics are {np.shape(stats.feature_sum)}-d, not {self.dims}")
        return stats.n

    def compute(self) -> dict[str, Tensor]:
        """{"fid": the Frechet distance (float64), "n_real", "n_fake": frames per side}.

        Raises:
            TfbenchError: fewer than 2 frames on a side.
        """
        n_real, n_fake = int(self.real_n), int(self.fake_n)
        if n_real < 2 or n_fake < 2:
            raise TfbenchError(
                f"FID needs at least 2 frames on each side to estimate covariances, "
                f"got {n_real} real (ground-truth) and {n_fake} generated"
            )
        mu_r, sigma_r = mean_cov(self.real_sum.cpu().numpy(), self.real_outer.cpu().numpy(), n_real)
        mu_f, sigma_f = mean_cov(self.fake_sum.cpu().numpy(), self.fake_outer.cpu().numpy(), n_fake)
        value = frechet_distance(mu_r, sigma_r, mu_f, sigma_f)
        return {
            "fid": torch.tensor(value, dtype=torch.float64),
            "n_real": self.real_n.clone(),
            "n_fake": self.fake_n.clone(),
        }

    def stats(self, real: bool = True, key: Mapping[str, str] | None = None) -> FIDStats:
        """One side's sums and count (synced across processes), e.g. to cache the ground-truth side."""
        side = "real" if real else "fake"
        with self.sync_context():
            return FIDStats(
                getattr(self, f"{side}_sum").cpu().numpy().copy(),
                getattr(self, f"{side}_outer").cpu().numpy().copy(),
                int(getattr(self, f"{side}_n")),
                dict(key or {}),
            )
