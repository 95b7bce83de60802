"""`LSE`: the torchmetrics wrapper of `tfbench.metrics.lse` (LSE-D and LSE-C over a set of clips).

The class only keeps state; every number comes from `lse_for_clip`. States are sums and a count
(`dist_reduce_fx="sum"`) plus per-clip lists (`"cat"`), so processes or halves of a dataset merge into
exactly the one-pass result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from tfbench.errors import TfbenchError
from tfbench.metrics.lse import (
    DEFAULT_BATCH_SIZE,
    LSE_PROTOCOL,
    LSE_PROTOCOL_VERSION,
    VSHIFT,
    ChannelOrder,
    LSEResult,
    lse_for_clip,
    prepare_syncnet,
)
from tfbench.metrics.precision import Precision, check_precision
from tfbench.models.syncnet_python import SyncNetS, load_syncnet_v2

__all__ = ["LSE"]


class LSE(Metric):
    """Mean LSE-D (lower is better) and LSE-C (higher is better) over clips, syncnet_python's algorithm.

    `update(frames, mfcc)` scores one clip with `lse_for_clip`; `update(result)` adds an `LSEResult`
    computed elsewhere (the runner scores each clip once and keeps the row). Skipped clips (fewer than
    6 frames with audio) are counted in `n_skipped` and left out of the means, whose denominator is `n`.

    One metric returns two numbers with opposite directions: `DIRECTIONS` declares each, and
    `higher_is_better` is None (mixed).

    Args:
        model: a `SyncNetS` in eval mode; default: `syncnet_v2` loaded from `weights` or the weights cache.
        weights: path of a `syncnet_v2.model` file, used when `model` is None.
        batch_size, vshift, channel_order: passed to `lse_for_clip`.
        precision: "fp32" (default) or "bf16" for the forward passes; kept as `self.precision`, to store
            beside the numbers.

    Example:
        >>> metric = LSE(SyncNetS().eval())
        >>> metric.update(torch.zeros(4, 3, 224, 224, dtype=torch.uint8), torch.zeros(13, 15))
        >>> metric.compute()["n"], int(metric.n_skipped)
        (tensor(0), 1)
    """

    higher_is_better: bool | None = None
    DIRECTIONS: ClassVar[dict[str, bool]] = {"lse_d": False, "lse_c": True}
    is_differentiable = False
    full_state_update = False
    plot_lower_bound = 0.0
    protocol = LSE_PROTOCOL
    protocol_version = LSE_PROTOCOL_VERSION

    min_dist_sum: Tensor
    conf_sum: Tensor
    count: Tensor
    n_skipped: Tensor
    min_dists: list[Tensor]
    confs: list[Tensor]
    offsets: list[Tensor]
    curves: list[Tensor]

    def __init__(
        self,
        model: SyncNetS | None = None,
        weights: str | Path | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        vshift: int = VSHIFT,
        channel_order: ChannelOrder = "bgr",
        precision: Precision = "fp32",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if model is None:
            if weights is None:
                from tfbench import weights as weights_registry  # resolved only when no model is given

                weights = weights_registry.resolve("syncnet_v2")
            model = load_syncnet_v2(weights)
        self.model = prepare_syncnet(model)
        self.precision = check_precision(precision, "LSE")
        self.batch_size = batch_size
        self.vshift = vshift
        self.channel_order: ChannelOrder = channel_order
        self.add_state("min_dist_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("conf_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_skipped", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        for name in ("min_dists", "confs", "offsets", "curves"):
            self.add_state(name, [], dist_reduce_fx="cat")

    def update(
        self, frames: Tensor | LSEResult, mfcc: Tensor | None = None, n_audio_samples: int | None = None
    ) -> None:
        """Score one clip (frames + MFCC, see `lse_for_clip`) or add an `LSEResult` of the same precision."""
        if isinstance(frames, LSEResult):
            if frames.precision != self.precision:
                raise TfbenchError(f"LSE: a {frames.precision} result cannot join a {self.precision} metric")
            result = frames
        else:
            if mfcc is None:
                raise TypeError("LSE.update needs the clip's MFCC beside its frames")
            result = lse_for_clip(
                self.model,
                frames,
                mfcc,
                n_audio_samples,
                self.batch_size,
                self.vshift,
                self.channel_order,
                self.precision,
            )
        if result.skipped is not None or result.offset is None:
            self.n_skipped += 1
            return
        device = self.count.device
        self.min_dist_sum += result.min_dist
        self.conf_sum += result.conf
        self.count += 1
        self.min_dists.append(torch.tensor([result.min_dist], dtype=torch.float64, device=device))
        self.confs.append(torch.tensor([result.conf], dtype=torch.float64, device=device))
        self.offsets.append(torch.tensor([result.offset], dtype=torch.long, device=device))
        self.curves.append(torch.tensor([result.curve], dtype=torch.float32, device=device))

    def compute(self) -> dict[str, Tensor]:
        """{"lse_d": mean min_dist, "lse_c": mean conf, "n": clips scored, "n_skipped": clips skipped}.

        The means are NaN when no clip was scored.
        """
        n = self.count
        return {
            "lse_d": self.min_dist_sum / n,
            "lse_c": self.conf_sum / n,
            "n": n.clone(),
            "n_skipped": self.n_skipped.clone(),
        }

    def per_clip(self) -> dict[str, Tensor]:
        """The scored clips' min_dist (n,), conf (n,), offset (n,) and curve (n, 2 * vshift + 1)."""

        def cat(states: list[Tensor] | Tensor, empty: Tensor) -> Tensor:
            if isinstance(states, Tensor):  # after a distributed sync the list is one tensor
                return states
            return dim_zero_cat(states) if states else empty

        device = self.count.device
        return {
            "min_dist": cat(self.min_dists, torch.zeros(0, dtype=torch.float64, device=device)),
            "conf": cat(self.confs, torch.zeros(0, dtype=torch.float64, device=device)),
            "offset": cat(self.offsets, torch.zeros(0, dtype=torch.long, device=device)),
            "curve": cat(self.curves, torch.zeros(0, 2 * self.vshift + 1, device=device)),
        }
