"""The model protocol every talking-face generator implements, and the model registry.

A model turns one `GenerationRequest` (the target clip's face crops, its driving audio and an identity
reference, already decoded and cropped by the data pipeline) into generated face crops of the same count.
The runner owns decoding, cropping, paste-back, writing and scoring, so a model only generates. Baselines
and third-party packages register into `MODELS` (entry-point group `tfbench.models`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from tfbench.errors import TfbenchError
from tfbench.registry import Registry


@dataclass(frozen=True)
class GenerationRequest:
    """Everything a model may use to generate one clip, all at 25 fps and 16 kHz.

    faces: (T, S, S, 3) uint8 RGB crops of the target (pose) video at the model's `crop_size`.
    reference: (R, S, S, 3) uint8 RGB identity-reference crops (R >= 1).
    audio: float32 mono waveform in [-1, 1] that drives the mouth.
    """

    sample_id: str
    faces: np.ndarray
    reference: np.ndarray
    audio: np.ndarray
    fps: float = 25.0
    sample_rate: int = 16000
    metadata: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.faces.ndim != 4 or self.faces.shape[-1] != 3 or self.faces.dtype != np.uint8:
            raise TfbenchError(f"{self.sample_id}: faces must be (T, S, S, 3) uint8, got {self.faces.shape}")
        if self.reference.ndim != 4 or self.reference.shape[1:] != self.faces.shape[1:]:
            raise TfbenchError(
                f"{self.sample_id}: reference crops {self.reference.shape} "
                f"do not match faces {self.faces.shape}"
            )
        if self.audio.ndim != 1:
            raise TfbenchError(f"{self.sample_id}: audio must be mono (1-D), got shape {self.audio.shape}")

    @property
    def n_frames(self) -> int:
        return int(self.faces.shape[0])


class TalkingFaceModel(ABC):
    """A generator loaded once per run and called once per clip.

    Subclasses declare `crop_size` (the face crop they take and return) and `weights` (registry names of the
    files `load` needs, shown by `tfbench models`), and implement `load` and `generate`.
    """

    crop_size: ClassVar[int] = 96
    weights: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""

    @classmethod
    @abstractmethod
    def load(cls, device: str = "cpu", overrides: dict[str, Path] | None = None) -> TalkingFaceModel:
        """Build the model on `device`, reading weight files through the weights registry (or `overrides`)."""

    @abstractmethod
    def generate(self, request: GenerationRequest) -> np.ndarray:
        """Generated (T, S, S, 3) uint8 RGB face crops, one per input frame, S = `crop_size`."""


MODELS: Registry[type[TalkingFaceModel]] = Registry("model", entry_point_group="tfbench.models")


def register_model(
    name: str, aliases: tuple[str, ...] = ()
) -> Callable[[type[TalkingFaceModel]], type[TalkingFaceModel]]:
    """Class decorator: `@register_model("wav2lip")` adds a `TalkingFaceModel` subclass to `MODELS`."""

    def decorate(cls: type[TalkingFaceModel]) -> type[TalkingFaceModel]:
        if not (isinstance(cls, type) and issubclass(cls, TalkingFaceModel)):
            raise TypeError(f"model {name!r} must subclass TalkingFaceModel")
        return MODELS.add(name, cls, aliases)

    return decorate


def check_output(request: GenerationRequest, frames: np.ndarray, crop_size: int) -> np.ndarray:
    """Check a model's output: one uint8 (S, S, 3) crop per input frame, or an error naming the clip."""
    expected = (request.n_frames, crop_size, crop_size, 3)
    if frames.shape != expected or frames.dtype != np.uint8:
        raise TfbenchError(
            f"{request.sample_id}: model returned {frames.dtype} {frames.shape}, expected uint8 {expected}"
        )
    return frames
