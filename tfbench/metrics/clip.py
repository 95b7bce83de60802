"""The per-clip metric interface: what a run hands every metric, and the registry of metrics.

A run decodes and crops each clip once and hands the same in-memory `Clip` to every selected metric.
Each `ClipMetric` returns its per-clip values (one results row) and, at the end, its dataset-level values
(FID, which exists only over a whole set). Metrics declare their direction per value key, whether they need
ground truth (full-reference metrics are refused under the dubbing protocol) and which crops they read.
New metrics register into `METRICS` (entry-point group `tfbench.metrics`); the built-in ones live in
`tfbench.metrics.adapters`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from tfbench.errors import TfbenchError
from tfbench.metrics.precision import check_precision
from tfbench.registry import Registry

ClipValue = float | int | str | list[float] | None


@dataclass(frozen=True)
class Clip:
    """One clip as the metrics see it, at 25 fps with 16 kHz mono audio.

    generated / target: (T, S, S, 3) uint8 RGB face crops (S = the generator's crop size); target is the
    ground truth, None under dubbing. generated_224: (T, 224, 224, 3) uint8 RGB crops of the generated video
    by syncnet_python's crop rule (cut with the same windows as the ground truth's), for LSE. video_path: the
    generated video as written (legacy LSE protocols re-read it through their own frame path).
    """

    sample_id: str
    generated: np.ndarray
    audio: np.ndarray
    target: np.ndarray | None = None
    generated_224: np.ndarray | None = None
    fps: float = 25.0
    sample_rate: int = 16000
    video_path: Path | None = None


@dataclass(frozen=True)
class MetricSettings:
    """Options shared by the metrics of one run (recorded in the run's config)."""

    device: str = "cpu"
    overrides: dict[str, Path] = field(default_factory=dict)
    fid_resize: str = "pytorch_fid"
    lse_protocol: str = "tfbench"
    ssim_variant: str = "skimage"
    batch_size: int = 32
    precision: str = "fp32"  # of the metrics' network forward passes: fp32, or bf16 where `precisions` has it


class ClipMetric(ABC):
    """A metric that scores clips one at a time and may add dataset-level values at the end."""

    directions: ClassVar[dict[str, bool]]  # value key -> higher is better
    needs_target: ClassVar[bool] = False
    needs_224: ClassVar[bool] = False
    weights: ClassVar[tuple[str, ...]] = ()
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    """The `MetricSettings.precision` values the metric accepts: its network's precisions (a metric without a
    network is exact under any of them); a run asking for another one is refused before it starts."""

    @abstractmethod
    def __init__(self, settings: MetricSettings) -> None: ...

    @abstractmethod
    def update(self, clip: Clip) -> dict[str, ClipValue]:
        """Score one clip; the returned values go into its results row."""

    def compute(self) -> dict[str, ClipValue]:
        """Dataset-level values (merged across processes); most metrics have none beyond row means."""
        return {}

    def settings_record(self) -> dict[str, str]:
        """Conventions stored beside the numbers (protocol names, resize modes, variants)."""
        return {}


METRICS: Registry[type[ClipMetric]] = Registry("metric", entry_point_group="tfbench.metrics")


def refuse_unsupported_precision(names: Sequence[str], precision: str) -> None:
    """Raise a TfbenchError for an unknown precision, or one that a selected metric cannot run in (see
    `ClipMetric.precisions`): a bf16 number is never one computed in fp32, or the reverse. The metrics must
    be registered (`tfbench.metrics.suite` registers the built-in ones)."""
    check_precision(precision, "precision")
    bad = [name for name in names if precision not in METRICS.get(name).precisions]
    if bad:
        able = sorted(name for name, cls in METRICS.items() if precision in cls.precisions)
        raise TfbenchError(
            f"precision {precision!r}: metric(s) {', '.join(bad)} cannot run in it "
            f"(metrics that can: {', '.join(able) or 'none'}); choose other metrics or another precision"
        )


def target_of(clip: Clip, metric: str) -> np.ndarray:
    if clip.target is None:
        raise TfbenchError(f"{clip.sample_id}: {metric} needs ground truth (not available under dubbing)")
    return clip.target
