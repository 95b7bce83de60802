"""The torchmetrics state shared by the window sync scores (`ExpertSync` for sync_w2l, `AVSync` for avsync).

Both average a per-clip `SyncWindowResult` (`tfbench.metrics.sync_windows`) over clips and keep each clip's
score, offset, best score and offset curve; only the network that scores a clip differs, so a subclass
supplies `score_clip` and the names, and this base holds the reducible state.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from tfbench.errors import TfbenchError
from tfbench.metrics.sync_windows import SyncWindowResult

__all__ = ["WindowSyncMetric"]


class WindowSyncMetric(Metric):
    """Mean window sync score over clips (higher is better), with per-clip offsets and curves.

    `update(frames, mel)` scores one clip with the subclass's `score_clip`; `update(result)` adds a result
    of the subclass's `result_type` computed elsewhere. Skipped clips are counted in `n_skipped` and left out
    of the mean, whose denominator is `n`. State: the score sum and counts (`"sum"`), per-clip score, offset,
    best score and curve (`"cat"`), so halves or processes merge into exactly the one-pass value.

    Subclasses set `key` (the value's name, e.g. "sync_w2l") and `result_type`, and implement `score_clip`.
    """

    higher_is_better = True
    is_differentiable = False
    full_state_update = False

    key: ClassVar[str]
    result_type: ClassVar[type[SyncWindowResult]]

    score_sum: Tensor
    count: Tensor
    n_skipped: Tensor
    scores: list[Tensor]
    offsets: list[Tensor]
    best_scores: list[Tensor]
    curves: list[Tensor]

    def __init__(self, vshift: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vshift = vshift
        self.add_state("score_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_skipped", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        for name in ("scores", "offsets", "best_scores", "curves"):
            self.add_state(name, [], dist_reduce_fx="cat")

    @abstractmethod
    def score_clip(self, frames: Tensor, mel: Tensor | np.ndarray) -> SyncWindowResult:
        """Score one clip (96x96 uint8 crops and its Wav2Lip mel) with the subclass's network."""

    def update(self, frames: Tensor | SyncWindowResult, mel: Tensor | np.ndarray | None = None) -> None:
        """Score one clip (96x96 uint8 crops + its Wav2Lip mel) or add a result of `result_type`."""
        if isinstance(frames, SyncWindowResult):
            if not isinstance(frames, self.result_type):
                raise TfbenchError(
                    f"{self.key}: expected {self.result_type.__name__}, got {type(frames).__name__} "
                    "(a score of another network)"
                )
            result = frames
        else:
            if mel is None:
                raise TfbenchError(f"{self.key} needs the clip's Wav2Lip mel beside its frames")
            result = self.score_clip(frames, mel)
        if result.skipped is not None or result.offset is None:
            self.n_skipped += 1
            return
        if len(result.curve) != 2 * self.vshift + 1:
            raise TfbenchError(
                f"{self.key}: a result with {len(result.curve)} offsets, the metric has vshift {self.vshift}"
            )
        device = self.count.device
        self.score_sum += result.score
        self.count += 1
        self.scores.append(torch.tensor([result.score], dtype=torch.float64, device=device))
        self.offsets.append(torch.tensor([result.offset], dtype=torch.long, device=device))
        self.best_scores.append(torch.tensor([result.best_score], dtype=torch.float64, device=device))
        self.curves.append(torch.tensor([result.curve], dtype=torch.float64, device=device))

    def compute(self) -> dict[str, Tensor]:
        """{key: mean score over scored clips, "n": clips scored, "n_skipped"}; NaN when none."""
        return {
            self.key: self.score_sum / self.count,
            "n": self.count.clone(),
            "n_skipped": self.n_skipped.clone(),
        }

    def per_clip(self) -> dict[str, Tensor]:
        """The scored clips' score (n,), offset (n,), best_score (n,) and curve (n, 2 * vshift + 1)."""

        def cat(states: list[Tensor] | Tensor, empty: Tensor) -> Tensor:
            if isinstance(states, Tensor):  # after a distributed sync the list is one tensor
                return states
            return dim_zero_cat(states) if states else empty

        device = self.count.device
        empty = torch.zeros(0, dtype=torch.float64, device=device)
        return {
            "score": cat(self.scores, empty),
            "offset": cat(self.offsets, empty.long()),
            "best_score": cat(self.best_scores, empty),
            "curve": cat(self.curves, empty.reshape(0, 1).expand(0, 2 * self.vshift + 1)),
        }
