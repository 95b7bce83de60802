"""`AVSync`: the torchmetrics `Metric` of the AVSyncNet sync score (`avsync`, higher is better).

The functional core is `tfbench.metrics.avsync.avsync_for_clip`; the reducible state (score sum, counts,
per-clip score, offset, best score and curve) is `WindowSyncMetric`'s, shared with `ExpertSync`. Kept apart
from the functional core so that registering the per-clip metric does not import torchmetrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from tfbench.metrics.avsync import METRIC, AVSyncResult, avsync_for_clip
from tfbench.metrics.sync_metric import WindowSyncMetric
from tfbench.metrics.sync_windows import DEFAULT_BATCH_SIZE, FPS, VSHIFT, SyncWindowResult
from tfbench.models.avsyncnet import AVSyncNet
from tfbench.models.training.checkpoint import load_avsyncnet

__all__ = ["AVSync"]


class AVSync(WindowSyncMetric):
    """Mean AVSyncNet sync score over clips (`avsync`, higher is better), with per-clip offsets.

    `update(frames, mel)` scores a clip with `avsync_for_clip`, `update(result)` adds an `AVSyncResult`
    computed elsewhere; state, `compute` and `per_clip` are `WindowSyncMetric`'s.

    Args:
        model: an `AVSyncNet`; default: weights `avsyncnet` (a `tfbench train avsyncnet` checkpoint) from
            `weights.resolve`, with `weights` the `--weights NAME=PATH` overrides, loaded once onto `device`.
        fps, vshift, batch_size: passed to `avsync_for_clip`.
    """

    DIRECTIONS: ClassVar[dict[str, bool]] = {METRIC: True}
    key: ClassVar[str] = METRIC
    result_type: ClassVar[type[SyncWindowResult]] = AVSyncResult
    plot_lower_bound = -1.0
    plot_upper_bound = 1.0

    def __init__(
        self,
        model: AVSyncNet | None = None,
        weights: Mapping[str, Path] | None = None,
        device: str | torch.device = "cpu",
        fps: float = FPS,
        vshift: int = VSHIFT,
        batch_size: int = DEFAULT_BATCH_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(vshift, **kwargs)
        if model is None:
            from tfbench import weights as weights_registry  # resolved only when no model is given

            _, model = load_avsyncnet(weights_registry.resolve("avsyncnet", dict(weights or {})), device)
        self.model = model.eval()
        self.fps, self.batch_size = fps, batch_size

    def score_clip(self, frames: Tensor, mel: Tensor | np.ndarray) -> AVSyncResult:
        return avsync_for_clip(self.model, frames, mel, self.fps, self.vshift, self.batch_size)
