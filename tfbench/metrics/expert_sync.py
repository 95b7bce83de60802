"""`sync_w2l`: the Wav2Lip expert SyncNet's sync score of generated 96x96 crops (higher is better).

Wav2Lip's expert (`tfbench.models.wav2lip_syncnet`, checkpoint-compatible with `lipsync_expert.pth`) embeds
the lower half of 5 consecutive frames and a 16-step Wav2Lip mel window; the cosine of the two unit-length
embeddings is its probability that the pair is in sync. Per clip, the rules shared with `avsync`
(`tfbench.metrics.sync_windows`): every 5-frame window at stride 1 with its mel window starting at
int(80 * v / fps), windows past the end of the audio not scored, a skip reason for a clip without a window,
the mean cosine as the score with each window's value kept, and the offset search over -15..+15 against
zero-padded audio embeddings (LSE's order and sign).

All windows run batched through the model on its device (one forward per batch of windows, never a
per-window loop), and all offsets come from one matrix product. The model is loaded once per metric.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from tfbench import audio as tf_audio
from tfbench.metrics.sync_metric import WindowSyncMetric
from tfbench.metrics.sync_windows import (
    DEFAULT_BATCH_SIZE,
    FPS,
    VSHIFT,
    SyncWindowResult,
    frame_windows,
    n_full_mel_windows,
    offset_curve,
    plan_windows,
    skipped_result,
    window_result,
)
from tfbench.models.wav2lip_syncnet import Wav2LipSyncNet, expert_face_input, load_wav2lip_syncnet

__all__ = [
    "ExpertSync",
    "ExpertSyncResult",
    "expert_sync_for_clip",
    "expert_sync_for_clip_wav",
    "expert_windows",
    "n_full_mel_windows",
    "offset_curve",
]

METRIC = "sync_w2l"


@dataclass(frozen=True)
class ExpertSyncResult(SyncWindowResult):
    """The Wav2Lip expert's sync score of one clip (fields: `SyncWindowResult`)."""


def expert_windows(frames: Tensor, n_windows: int | None = None) -> Tensor:
    """(N, 5, 96, 96, 3) strided view (no copy): window v = frames[v : v + 5]; default N = T - 4."""
    return frame_windows(frames, n_windows, METRIC)


def _embed(model: Wav2LipSyncNet, windows: Tensor, mels: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
    """(N, 512) video embeddings of `windows` and audio embeddings of `mels` (N, 80, 16)."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        video = [
            model.forward_video(expert_face_input(windows[start : start + batch_size].to(device)))
            for start in range(0, windows.shape[0], batch_size)
        ]
        audio = [
            model.forward_audio(mels[start : start + batch_size, None].to(device, torch.float32))
            for start in range(0, mels.shape[0], batch_size)
        ]
    return torch.cat(video), torch.cat(audio)


def expert_sync_for_clip(
    model: Wav2LipSyncNet,
    frames: Tensor,
    mel: Tensor | np.ndarray,
    fps: float = FPS,
    vshift: int = VSHIFT,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ExpertSyncResult:
    """The Wav2Lip expert's sync score of one clip, with the offset search.

    Args:
        model: a `Wav2LipSyncNet` in eval mode (e.g. from `load_wav2lip_syncnet`); it runs on its device.
        frames: generated (T, 96, 96, 3) or (T, 3, 96, 96) uint8 RGB face crops, on any device.
        mel: the clip's (80, Tm) Wav2Lip mel (`tfbench.audio.wav2lip_mel`, 80 steps per second).
        fps: the video frame rate (sets each frame's mel window).
        vshift: offsets searched are -vshift..+vshift frames.
        batch_size: windows per forward pass (memory only).

    Returns:
        An `ExpertSyncResult`; a clip with fewer than 5 frames, or audio shorter than one window, is skipped.

    Raises:
        TfbenchError: naming sync_w2l and the shapes, for frames or mel of the wrong shape or dtype.
    """
    plan = plan_windows(frames, mel, fps, vshift, batch_size, METRIC)
    if plan.skipped is not None:
        return skipped_result(ExpertSyncResult, plan)
    video_emb, audio_emb = _embed(model, plan.windows, plan.mels, batch_size)
    return window_result(ExpertSyncResult, plan, video_emb, audio_emb, vshift)


def expert_sync_for_clip_wav(
    model: Wav2LipSyncNet,
    frames: Tensor,
    wav: Tensor | np.ndarray,
    sample_rate: int = tf_audio.SAMPLE_RATE,
    fps: float = FPS,
    vshift: int = VSHIFT,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ExpertSyncResult:
    """`expert_sync_for_clip` from a mono waveform (int16, or float in [-1, 1]; resampled to 16 kHz)."""
    mel = tf_audio.wav2lip_mel(wav, sample_rate)
    return expert_sync_for_clip(model, frames, mel, fps, vshift, batch_size)


class ExpertSync(WindowSyncMetric):
    """Mean Wav2Lip-expert sync score over clips (`sync_w2l`, higher is better), with per-clip offsets.

    The state and `update` / `compute` / `per_clip` are `WindowSyncMetric`'s; `update(frames, mel)` scores a
    clip with `expert_sync_for_clip`, `update(result)` adds an `ExpertSyncResult` computed elsewhere.

    Args:
        model: a `Wav2LipSyncNet`; default: `wav2lip_syncnet` from `weights.resolve` (with `weights`, the
            `--weights NAME=PATH` overrides), loaded once onto `device`.
        fps, vshift, batch_size: passed to `expert_sync_for_clip`.
    """

    DIRECTIONS: ClassVar[dict[str, bool]] = {METRIC: True}
    key: ClassVar[str] = METRIC
    result_type: ClassVar[type[SyncWindowResult]] = ExpertSyncResult
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    def __init__(
        self,
        model: Wav2LipSyncNet | None = None,
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

            model = load_wav2lip_syncnet(
                weights_registry.resolve("wav2lip_syncnet", dict(weights or {})), device
            )
        self.model = model.eval()
        self.fps, self.batch_size = fps, batch_size

    def score_clip(self, frames: Tensor, mel: Tensor | np.ndarray) -> ExpertSyncResult:
        return expert_sync_for_clip(self.model, frames, mel, self.fps, self.vshift, self.batch_size)
