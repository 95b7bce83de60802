"""`Sample`: one unit of a benchmark run, the contract between datasets, models, metrics and the runner.

A sample names files only (nothing is decoded here), so listing a 14 000-pair split is instant and a
sample can be sent to another process as is. Its `protocol` says which metrics are valid for it
(DESIGN.md section 4): under "reconstruction" the driving audio is the clip's own and the clip itself is
the ground truth; under "dubbing" (cross-audio pair lists) there is no ground truth, and full-reference
metrics (PSNR, SSIM, LMD, FID against GT) must refuse the sample.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal, TypeAlias

Protocol: TypeAlias = Literal["reconstruction", "dubbing"]
"""What a sample's audio is: its own clip's ("reconstruction") or another clip's ("dubbing")."""

PROTOCOLS: Final[tuple[Protocol, ...]] = ("reconstruction", "dubbing")

MetaValue: TypeAlias = str | int | float | bool | None


@dataclass(frozen=True)
class Sample:
    """One video to generate (or score): target/pose video, driving audio, identity reference, optional GT.

    `id` is stable across runs and machines ("lrs2/6330311066473698535/00011"); results are keyed by it,
    so it never contains the dataset root. Datasets set `reference` to the target video itself unless a
    separate identity reference is known (a folder's ground-truth partner).
    `ground_truth` exists only under "reconstruction" (and only where a ground-truth file is known).
    `metadata` carries dataset-specific facts (the synthetic data's planted offset, a pair list's line
    number); it is read-only and takes no part in hashing.
    """

    id: str
    video: Path
    audio: Path
    reference: Path
    dataset: str
    split: str
    protocol: Protocol = "reconstruction"
    ground_truth: Path | None = None
    metadata: Mapping[str, MetaValue] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"sample {self.id}: protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.protocol == "dubbing" and self.ground_truth is not None:
            raise ValueError(f"sample {self.id}: a dubbing sample has no ground truth")
        object.__setattr__(self, "video", Path(self.video))
        object.__setattr__(self, "audio", Path(self.audio))
        object.__setattr__(self, "reference", Path(self.reference))
        if self.ground_truth is not None:
            object.__setattr__(self, "ground_truth", Path(self.ground_truth))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    def __reduce__(self) -> tuple[type[Sample], tuple[object, ...]]:
        """Pickle through the constructor (a read-only mapping cannot be pickled), so samples can be sent
        to worker processes."""
        values = [getattr(self, f.name) for f in fields(self)]
        values[-1] = dict(self.metadata)
        return type(self), tuple(values)

    @property
    def has_ground_truth(self) -> bool:
        """Whether full-reference metrics can be computed for this sample."""
        return self.ground_truth is not None

    def files(self) -> dict[str, Path]:
        """The distinct files this sample reads, by role ("video", "audio", "reference", "ground_truth")."""
        roles: dict[str, Path] = {"video": self.video, "audio": self.audio, "reference": self.reference}
        if self.ground_truth is not None:
            roles["ground_truth"] = self.ground_truth
        return roles
