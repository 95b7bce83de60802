"""The `wav2lip` and `wav2lip_gan` models: Wav2Lip's published checkpoints with its inference convention.

What the reference's `inference.py` does for every video frame i, reproduced here in batches:
- the mel window of frame i starts at int(i * 80 / fps) and spans 16 steps (0.2 s); a window running past
  the audio takes the last 16 steps (`tfbench.audio.mel_windows`);
- the face input is the 96x96 target crop with its lower half (rows 48:) zeroed, concatenated with a
  reference crop. Wav2Lip's inference uses the SAME unmasked target frame as that reference (its
  `datagen` concatenates `img_masked` with `img_batch` itself), so the pose and identity both come from the
  target; `request.faces` therefore feeds both halves, and `request.reference` (the identity image that
  other models use) is deliberately ignored, as a Wav2Lip user would get;
- channels are BGR (the reference decodes with OpenCV): tfbench's RGB crops are flipped going in and the
  output is flipped back, so a real checkpoint sees the colours it was trained on;
- the output in [0, 1] becomes uint8 by `(x * 255).astype(uint8)` (truncation), as the reference writes it.
Face detection, smoothing and paste-back belong to tfbench's face pipeline and runner, not to the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from tfbench import weights
from tfbench.audio import mel_windows, wav2lip_mel
from tfbench.errors import TfbenchError
from tfbench.models.protocol import GenerationRequest, TalkingFaceModel, check_output, register_model
from tfbench.models.wav2lip import FACE_SIZE, Wav2LipGenerator, face_input, load_wav2lip, to_rgb_uint8

__all__ = ["DEFAULT_BATCH_SIZE", "Wav2LipGANModel", "Wav2LipModel"]

DEFAULT_BATCH_SIZE = 128
"""Frames per forward pass: the reference's `--wav2lip_batch_size` default."""


@register_model("wav2lip")
class Wav2LipModel(TalkingFaceModel):
    """Wav2Lip (no visual-quality GAN) from its published `wav2lip.pth`, loaded once per run.

    `batch_size` frames go through the network at a time (the reference's default 128); lower it for a small
    accelerator. The network runs under `torch.inference_mode` on the device given to `load`.
    """

    crop_size: ClassVar[int] = FACE_SIZE
    weights: ClassVar[tuple[str, ...]] = ("wav2lip",)
    description: ClassVar[str] = (
        "Wav2Lip (Prajwal et al. 2020), published checkpoint; reference frame = the target frame itself"
    )

    def __init__(
        self,
        network: Wav2LipGenerator,
        device: str | torch.device = "cpu",
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise TfbenchError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        # channels_last on CPU: about 25% less CPU time per frame, outputs within 1e-7 (measured on 2 cores);
        # elsewhere the default layout, whose speed has not been measured against it.
        self.memory_format = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.network = network.to(self.device).to(memory_format=self.memory_format).eval()
        self.batch_size = batch_size

    @classmethod
    def load(cls, device: str = "cpu", overrides: dict[str, Path] | None = None) -> Wav2LipModel:
        """Resolve this model's checkpoint through the weights registry (or `overrides`) and load it."""
        path = weights.resolve(cls.weights[0], overrides)
        return cls(load_wav2lip(path, device), device)

    def generate(self, request: GenerationRequest) -> np.ndarray:
        """(T, 96, 96, 3) uint8 RGB crops, frame i driven by the mel window at int(80 * i / fps)."""
        size = self.crop_size
        if request.faces.shape[1:3] != (size, size):
            raise TfbenchError(
                f"{request.sample_id}: Wav2Lip takes {size}x{size} crops, got {request.faces.shape[1:3]}"
            )
        n = request.n_frames
        out = np.empty((n, size, size, 3), np.uint8)
        if n == 0:
            return check_output(request, out, size)
        mel = wav2lip_mel(request.audio, request.sample_rate)  # (80, steps)
        windows = torch.from_numpy(mel_windows(mel, n, request.fps))  # (n, 80, 16)
        faces = torch.from_numpy(np.ascontiguousarray(request.faces))
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                stop = min(start + self.batch_size, n)
                target = faces[start:stop].to(self.device)
                audio = windows[start:stop, None].to(self.device)  # (B, 1, 80, 16)
                face = face_input(target, target).contiguous(memory_format=self.memory_format)
                prediction = self.network(audio, face)
                out[start:stop] = to_rgb_uint8(prediction).cpu().numpy()
        return check_output(request, out, size)


@register_model("wav2lip_gan")
class Wav2LipGANModel(Wav2LipModel):
    """Wav2Lip trained with the visual-quality discriminator, from its published `wav2lip_gan.pth`."""

    weights: ClassVar[tuple[str, ...]] = ("wav2lip_gan",)
    description: ClassVar[str] = (
        "Wav2Lip + visual-quality GAN (Prajwal et al. 2020), published checkpoint; reference = target frame"
    )
