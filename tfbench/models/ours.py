"""The paper's model as the `TalkingFaceModel` `ours`: G_S closes the reference's lips, G_L syncs them.

Inference as the paper describes it (DESIGN.md section 5), in batches of frames:
1. identity reference -> G_S with silent audio (`Generator.close_lips`) -> closed-lip reference; with R
   reference crops, frame i uses reference i mod R (the runner passes one). A config trained without G_S
   (`ablation.use_silent_generator: false`) feeds the reference itself.
2. G_L takes the closed-lip reference, the pose (the target crop; its lower half is masked inside G_L) and
   frame i's 16x80 mel window (starting at int(80 * i / fps), `tfbench.audio.mel_windows`) and gives the
   96x96 crop. G_L folds the 5 frames of a training window into its batch, so frames are independent at
   inference: the batch size changes the output only by float rounding (at most one level in uint8).
3. The output in [0, 1] is rounded to uint8 RGB and checked with `check_output`.

Weights: the checkpoint written by `tfbench train generator` (`OUT/last.pt`), which holds G_L, G_S and the
config they were built with. No public checkpoint of the paper exists, so the weights entry `ours` names a
local file only: pass `--weights ours=PATH` (or put the file where `tfbench weights path ours` says).

`ours_demo` is the same model with the synthetic-data demo weights shipped in the package
(`tfbench/models/demo/ours_demo.pt`, weights entry `ours_demo`; how they were made is in
`tfbench/models/demo/README.md`): tiny networks trained for minutes on `tfbench synth` clips, so that
`make demo` runs the paper's pipeline offline. Its numbers say nothing about the paper's method; the model
name, its description and the checkpoint's label (`describe()`) all say "synthetic-data demo weights".
Not included: the paper's face restoration step (VQFR in its "with FR" rows, GFPGAN also shown); these are
the rows without FR.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import torch

from tfbench import weights
from tfbench.audio import mel_windows, wav2lip_mel
from tfbench.errors import TfbenchError
from tfbench.models.config import ModelConfig
from tfbench.models.generator import Generator
from tfbench.models.protocol import GenerationRequest, TalkingFaceModel, check_output, register_model
from tfbench.models.training.checkpoint import load_generators

__all__ = ["DEFAULT_BATCH_SIZE", "OURS_DEMO_WEIGHTS", "OURS_WEIGHTS", "OursDemoModel", "OursModel"]

OURS_WEIGHTS = "ours"
"""Weights entry of the generator checkpoint (a local file made by `tfbench train generator`)."""
OURS_DEMO_WEIGHTS = "ours_demo"
"""Weights entry of the packaged synthetic-data demo generator (`OursDemoModel`)."""
DEFAULT_BATCH_SIZE = 64
"""Frames per forward pass of G_L."""


def _to_float(crops: np.ndarray, device: torch.device) -> torch.Tensor:
    """(N, S, S, 3) uint8 -> (N, 3, S, S) float in [0, 1] on `device`."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).to(device)
    return x.permute(0, 3, 1, 2).float().div_(255.0)


@register_model("ours")
class OursModel(TalkingFaceModel):
    """Yaman et al. (ECCV 2024): G_S (closed-lip reference) then G_L, from a `tfbench train generator`
    checkpoint; no face restoration (the paper's "with FR" rows are not reproduced by this model)."""

    crop_size: ClassVar[int] = 96
    weights: ClassVar[tuple[str, ...]] = (OURS_WEIGHTS,)
    description: ClassVar[str] = (
        "Yaman et al. 2024 (stabilized sync loss): G_S + G_L from a local `tfbench train generator` "
        "checkpoint; without face restoration"
    )

    def __init__(
        self,
        config: ModelConfig,
        lip: Generator,
        silent: Generator | None,
        device: str | torch.device = "cpu",
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise TfbenchError(f"batch_size must be >= 1, got {batch_size}")
        if config.generator.face_size != self.crop_size:
            raise TfbenchError(
                f"the `ours` model takes {self.crop_size} px crops; this checkpoint's generator makes "
                f"{config.generator.face_size} px faces"
            )
        self.config = config
        self.label = lip.label  # "" for a training checkpoint
        self.device = torch.device(device)
        self.lip = lip.to(self.device).eval()
        self.silent = None if silent is None else silent.to(self.device).eval()
        self.batch_size = batch_size

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> Self:
        """Load G_L and G_S from a generator-stage checkpoint file (a training one or an export)."""
        config, lip, silent = load_generators(path, device)
        return cls(config, lip, silent, device)

    @classmethod
    def load(cls, device: str = "cpu", overrides: dict[str, Path] | None = None) -> Self:
        """The checkpoint of the model's weights entry: `--weights NAME=PATH` where given (e.g.
        `ours=OUT/last.pt`), else the registry's path (the packaged file for `ours_demo`)."""
        return cls.from_checkpoint(weights.resolve(cls.weights[0], overrides), device)

    def describe(self) -> str:
        """The model's description with the loaded checkpoint's label, where it has one."""
        return f"{self.description} [checkpoint: {self.label}]" if self.label else self.description

    @torch.inference_mode()
    def closed_lip_reference(self, reference: np.ndarray) -> torch.Tensor:
        """(R, 3, S, S) float: the reference crops with lips closed by G_S (unchanged without G_S)."""
        frames = _to_float(reference, self.device)
        return frames if self.silent is None else self.silent.close_lips(frames)

    @torch.inference_mode()
    def generate(self, request: GenerationRequest) -> np.ndarray:
        """(T, 96, 96, 3) uint8 RGB crops, frame i driven by the mel window at int(80 * i / fps)."""
        size = self.crop_size
        if request.faces.shape[1:3] != (size, size):
            raise TfbenchError(
                f"{request.sample_id}: `ours` takes {size}x{size} crops, got {request.faces.shape[1:3]}"
            )
        n = request.n_frames
        out = np.empty((n, size, size, 3), np.uint8)
        if n == 0:
            return check_output(request, out, size)
        mel = wav2lip_mel(request.audio, request.sample_rate)
        windows = torch.from_numpy(mel_windows(mel, n, request.fps))  # (n, 80, 16)
        identity = self.closed_lip_reference(request.reference)
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            pose = _to_float(request.faces[start:stop], self.device)
            ids = identity[torch.arange(start, stop, device=self.device) % identity.shape[0]]
            audio = windows[start:stop, None].to(self.device)
            frames = self.lip(ids, pose, audio)
            pixels = (frames * 255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)
            out[start:stop] = pixels.permute(0, 2, 3, 1).cpu().numpy()
        return check_output(request, out, size)


@register_model("ours_demo")
class OursDemoModel(OursModel):
    """`ours` with the packaged synthetic-data demo weights: shows the pipeline offline, not the paper."""

    weights: ClassVar[tuple[str, ...]] = (OURS_DEMO_WEIGHTS,)
    description: ClassVar[str] = (
        "`ours` with tfbench's synthetic-data demo weights (tiny.yaml-sized G_S + G_L trained for minutes on "
        "`tfbench synth` clips; see tfbench/models/demo/README.md): a pipeline demo, not the paper's results"
    )
