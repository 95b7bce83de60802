"""Reference baselines that bound every table: what perfect, frozen, mistimed and copy-paste mouths score.

- `gt`: the ground-truth crops themselves, the upper bound of every metric (sync included, up to the
  data's own offset).
- `static`: the first frame held still for the whole clip: good identity and image quality, no lip motion.
- `shifted`: ground truth with the video moved `shift` frames against the audio (frame i shows the
  ground truth of frame i - shift, edges repeated): a known-bad sync with perfect image quality. Positive
  shift = video lags audio, the sign syncnet_python reports as its AV offset.
- `reference-copy`: the identity reference pasted on every frame: the lip-leak extreme.
None needs weights, so all run anywhere in no time and show what a metric can and cannot tell apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from tfbench.errors import TfbenchError
from tfbench.models.protocol import GenerationRequest, ModelOptions, TalkingFaceModel, register_model

DEFAULT_SHIFT = 8
"""Frames of audio-video shift for `shifted`: beyond Wav2Lip's +-5-frame sync window, well inside +-15."""


class _ReferenceBaseline(TalkingFaceModel):
    """A weight-free baseline; `crop_size` follows whatever crop the runner gives it."""

    crop_size: ClassVar[int] = 96

    @classmethod
    def load(cls, device: str = "cpu", overrides: dict[str, Path] | None = None) -> TalkingFaceModel:
        return cls()


@register_model("gt", aliases=("ground-truth",))
class GroundTruth(_ReferenceBaseline):
    description: ClassVar[str] = "the ground-truth crops: the upper bound of every metric"

    def generate(self, request: GenerationRequest) -> np.ndarray:
        return request.faces.copy()


@register_model("static")
class StaticFrame(_ReferenceBaseline):
    description: ClassVar[str] = "the first frame held still: identity and quality without lip motion"

    def generate(self, request: GenerationRequest) -> np.ndarray:
        return np.repeat(request.faces[:1], request.n_frames, axis=0)


@dataclass(frozen=True)
class ShiftedOptions(ModelOptions):
    """`tfbench run --model shifted --shift K` (or `--model-option shift=K`)."""

    shift: int = field(
        default=DEFAULT_SHIFT,
        metadata={"help": "frames the video lags its audio (negative: leads); not 0"},
    )

    def __post_init__(self) -> None:
        if self.shift == 0:
            raise TfbenchError("shifted: a shift of 0 frames is the gt baseline")


@register_model("shifted")
class ShiftedGroundTruth(_ReferenceBaseline):
    description: ClassVar[str] = "ground truth moved against its audio by `shift` frames: known-bad sync"
    options_class = ShiftedOptions

    def __init__(self, shift: int = DEFAULT_SHIFT) -> None:
        if shift == 0:
            raise TfbenchError("shifted: a shift of 0 frames is the gt baseline")
        self.shift = shift

    @classmethod
    def load(
        cls,
        device: str = "cpu",
        overrides: dict[str, Path] | None = None,
        options: ShiftedOptions | None = None,
    ) -> ShiftedGroundTruth:
        return cls((options or ShiftedOptions()).shift)

    def generate(self, request: GenerationRequest) -> np.ndarray:
        source = np.clip(np.arange(request.n_frames) - self.shift, 0, request.n_frames - 1)
        return request.faces[source]


@register_model("reference-copy")
class ReferenceCopy(_ReferenceBaseline):
    description: ClassVar[str] = "the identity reference on every frame: the lip-leak extreme"

    def generate(self, request: GenerationRequest) -> np.ndarray:
        return np.repeat(request.reference[:1], request.n_frames, axis=0)
