"""The metric suite the runner and `tfbench score` use: every metric behind one per-clip interface.

A run decodes and crops each clip once and hands the same in-memory `Clip` to every selected metric.
Each `ClipMetric` returns its per-clip values (one results row) and, at the end, its dataset-level values
(FID, which exists only over a whole set). Metrics declare their direction per value key, whether they need
ground truth (full-reference metrics are refused under the dubbing protocol) and which crops they read.
New metrics register into `METRICS` (entry-point group `tfbench.metrics`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from tfbench import weights
from tfbench.errors import TfbenchError
from tfbench.registry import Registry

ClipValue = float | int | str | list[float] | None


@dataclass(frozen=True)
class Clip:
    """One clip as the metrics see it, at 25 fps with 16 kHz mono audio.

    generated / target: (T, S, S, 3) uint8 RGB face crops (S = the generator's crop size); target is the
    ground truth, None under dubbing. generated_224: (T, 224, 224, 3) uint8 RGB crops of the generated video
    by syncnet_python's crop rule (cut with the same windows as the ground truth's), for LSE.
    """

    sample_id: str
    generated: np.ndarray
    audio: np.ndarray
    target: np.ndarray | None = None
    generated_224: np.ndarray | None = None
    fps: float = 25.0
    sample_rate: int = 16000


@dataclass(frozen=True)
class MetricSettings:
    """Options shared by the metrics of one run (recorded in the run's config)."""

    device: str = "cpu"
    overrides: dict[str, Path] = field(default_factory=dict)
    fid_resize: str = "pytorch_fid"
    ssim_variant: str = "skimage"
    batch_size: int = 32


class ClipMetric(ABC):
    """A metric that scores clips one at a time and may add dataset-level values at the end."""

    directions: ClassVar[dict[str, bool]]  # value key -> higher is better
    needs_target: ClassVar[bool] = False
    needs_224: ClassVar[bool] = False
    weights: ClassVar[tuple[str, ...]] = ()

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


def _target(clip: Clip, metric: str) -> np.ndarray:
    if clip.target is None:
        raise TfbenchError(f"{clip.sample_id}: {metric} needs ground truth (not available under dubbing)")
    return clip.target


@METRICS.register("lse")
class LSEClipMetric(ClipMetric):
    """LSE-D / LSE-C / AV offset with syncnet_python's `S` on the 224 crops (see `tfbench.metrics.lse`)."""

    directions: ClassVar[dict[str, bool]] = {"lse_d": False, "lse_c": True}
    needs_224: ClassVar[bool] = True
    weights: ClassVar[tuple[str, ...]] = ("syncnet_v2",)

    def __init__(self, settings: MetricSettings) -> None:
        from tfbench.models.syncnet_python import load_syncnet_v2

        self.device = settings.device
        self.batch_size = settings.batch_size
        self.model = load_syncnet_v2(weights.resolve("syncnet_v2", settings.overrides), settings.device)

    def update(self, clip: Clip) -> dict[str, ClipValue]:
        from tfbench.metrics.lse import lse_for_clip_wav

        if clip.generated_224 is None:
            raise TfbenchError(f"{clip.sample_id}: lse needs the 224 px crops of the generated video")
        frames = torch.from_numpy(clip.generated_224).to(self.device)
        result = lse_for_clip_wav(
            self.model, frames, clip.audio, clip.sample_rate, self.batch_size, channel_order="rgb"
        )
        return {
            "lse_d": result.min_dist,
            "lse_c": result.conf,
            "av_offset": result.offset,
            "lse_curve": [float(v) for v in result.curve],
            "lse_windows": result.n_windows,
            "lse_skip": result.skipped,
        }

    def settings_record(self) -> dict[str, str]:
        from tfbench.metrics.lse import LSE_PROTOCOL, LSE_PROTOCOL_VERSION

        return {"lse_protocol": LSE_PROTOCOL, "lse_protocol_version": LSE_PROTOCOL_VERSION}


class MetricSuite:
    """The selected metrics of one run, built once (models loaded once) and fed clip by clip."""

    def __init__(self, names: Sequence[str], settings: MetricSettings) -> None:
        if not names:
            raise TfbenchError("no metrics selected")
        canonical = list(dict.fromkeys(METRICS.canonical(n) for n in names))
        self.metrics = {name: METRICS.get(name)(settings) for name in canonical}

    @property
    def names(self) -> list[str]:
        return list(self.metrics)

    @property
    def needs_target(self) -> bool:
        return any(m.needs_target for m in self.metrics.values())

    @property
    def needs_224(self) -> bool:
        return any(m.needs_224 for m in self.metrics.values())

    def directions(self) -> dict[str, bool]:
        """Value key -> higher is better, over all selected metrics."""
        return {k: v for m in self.metrics.values() for k, v in m.directions.items()}

    def update(self, clip: Clip) -> dict[str, ClipValue]:
        row: dict[str, ClipValue] = {}
        for metric in self.metrics.values():
            row.update(metric.update(clip))
        return row

    def compute(self) -> dict[str, ClipValue]:
        values: dict[str, ClipValue] = {}
        for metric in self.metrics.values():
            values.update(metric.compute())
        return values

    def settings_record(self) -> dict[str, str]:
        record: dict[str, str] = {}
        for metric in self.metrics.values():
            record.update(metric.settings_record())
        return record


def refuse_full_reference(names: Sequence[str], protocol: str) -> None:
    """Under the dubbing protocol there is no ground truth: full-reference metrics are an error, not a NaN."""
    if protocol != "dubbing":
        return
    bad = [n for n in names if METRICS.get(n).needs_target]
    if bad:
        raise TfbenchError(
            f"metrics {', '.join(bad)} need ground truth, which the dubbing protocol does not have; "
            "use no-reference metrics (lse, expert_sync) or the reconstruction protocol"
        )
