"""LPIPS of generated frames against ground-truth frames: the lpips package, AlexNet trunk, v0.1.

Per frame, `lpips.LPIPS(net="alex", version="0.1")` on both frames scaled from uint8 to [-1, 1]
(`x / 127.5 - 1`, lpips' own `im2tensor`), then the mean over a video's frames, then over videos.

Weights. LPIPS v0.1 has two parts: its linear heads, shipped inside the lpips package, and torchvision's
ImageNet AlexNet (`alexnet-owt-7be5be79.pth`), which lpips would download through torchvision when it is
not in the torch hub cache. tfbench never lets it: `load_lpips` asks `tfbench.weights.resolve("lpips_alex")`
for the file first (a missing one is the registry's one-line error), builds lpips with an untrained trunk
(`pnet_rand=True`, no download) and copies the trunk's five convolutions from that file, the same tensors
that torchvision's `alexnet(pretrained=True)` would load into the same layers.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import lpips
import torch
from torch import Tensor

from tfbench.errors import WeightsError
from tfbench.metrics.visual import DEFAULT_BATCH_SIZE, FramePairMetric, check_frame_pair

__all__ = ["LPIPS", "LPIPS_NET", "LPIPS_VERSION", "build_lpips", "load_lpips", "lpips_per_frame"]

LPIPS_NET = "alex"
LPIPS_VERSION = "0.1"
_SLICE_KEY = re.compile(r"slice\d+\.(\d+)\.(weight|bias)")


def build_lpips(alexnet_state: Mapping[str, Tensor]) -> lpips.LPIPS:
    """LPIPS (AlexNet, v0.1) whose trunk takes its weights from a torchvision AlexNet state_dict.

    lpips splits `alexnet.features` into `net.slice1..5`, keeping each layer's index in `features`, so
    `net.sliceK.<i>.weight` is `features.<i>.weight` of the torchvision file.

    Raises:
        WeightsError: a trunk tensor is missing from `alexnet_state` or has another shape.
    """
    with warnings.catch_warnings():  # lpips calls torchvision's deprecated `pretrained=` argument
        warnings.filterwarnings("ignore", message=".*(pretrained|weight enum).*", category=UserWarning)
        model = lpips.LPIPS(net=LPIPS_NET, version=LPIPS_VERSION, pnet_rand=True, verbose=False)
    trunk: dict[str, Tensor] = {}
    for name, mine in model.net.state_dict().items():
        match = _SLICE_KEY.fullmatch(name)
        source = f"features.{match[1]}.{match[2]}" if match else name
        if source not in alexnet_state:
            raise WeightsError(
                f"LPIPS: the AlexNet weights lack {source!r} (a torchvision alexnet state_dict?)"
            )
        if tuple(alexnet_state[source].shape) != tuple(mine.shape):
            raise WeightsError(
                f"LPIPS: AlexNet weight {source!r} has shape {tuple(alexnet_state[source].shape)}, "
                f"expected {tuple(mine.shape)}"
            )
        trunk[name] = alexnet_state[source]
    model.net.load_state_dict(trunk)
    return model.eval().requires_grad_(False)


def load_lpips(
    overrides: Mapping[str, Path] | None = None, device: torch.device | str | None = None
) -> lpips.LPIPS:
    """LPIPS with the registry's `lpips_alex` file (or `--weights lpips_alex=PATH`), on `device` (CPU).

    Raises:
        WeightsError: the file is missing (the registry's message), unreadable, or not an AlexNet.
    """
    from tfbench import weights  # the registry is needed only here

    path = weights.resolve("lpips_alex", dict(overrides) if overrides else None)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for a damaged or foreign file
        raise WeightsError(f"LPIPS: cannot read the AlexNet weights at {path}: {exc}") from exc
    if not isinstance(state, Mapping):
        raise WeightsError(f"LPIPS: {path} holds a {type(state).__name__}, not a state_dict")
    return build_lpips(state).to(device or "cpu")


def lpips_per_frame(
    model: lpips.LPIPS, preds: Tensor, target: Tensor, batch_size: int = DEFAULT_BATCH_SIZE
) -> Tensor:
    """LPIPS distance of each generated frame to its ground-truth frame.

    Args:
        model: an `lpips.LPIPS` (from `load_lpips`); its device is used.
        preds, target: uint8 RGB clips, (T, H, W, 3) or (T, 3, H, W), the same shape.
        batch_size: frame pairs per forward pass.

    Returns:
        (T,) float64 on the model's device (computed in float32, as lpips does).
    """
    p, t = check_frame_pair(preds, target, "LPIPS")
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for pb, tb in zip(p.split(batch_size), t.split(batch_size), strict=True):
            x0 = pb.to(device).float() / 127.5 - 1
            x1 = tb.to(device).float() / 127.5 - 1
            out.append(model(x0, x1).flatten())
    return torch.cat(out).double()


class LPIPS(FramePairMetric):
    """LPIPS (AlexNet, v0.1; lower is better), per frame, averaged per video, then over videos.

    Args:
        model: an `lpips.LPIPS`; default: `load_lpips(weights_overrides)`.
        batch_size: frame pairs per forward pass.
        weights_overrides: `--weights` overrides passed to the registry when `model` is None.
    """

    key = "lpips"
    higher_is_better = False
    DIRECTIONS: ClassVar[dict[str, bool]] = {"lpips": False}
    plot_lower_bound = 0.0

    def __init__(
        self,
        model: lpips.LPIPS | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        weights_overrides: Mapping[str, Path] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = (model if model is not None else load_lpips(weights_overrides)).eval()
        self.batch_size = batch_size

    def _per_frame(self, preds: Tensor, target: Tensor) -> Tensor:
        return lpips_per_frame(self.model, preds, target, self.batch_size)
