"""`avsync`: the paper's AVSyncNet sync score of generated 96x96 crops (higher is better).

AVSyncNet (`tfbench.models.avsyncnet`, a checkpoint of `tfbench train avsyncnet`, weights name `avsyncnet`)
embeds the lower half of 5 consecutive frames and a 16-step Wav2Lip mel window into unit vectors; their
cosine, in [-1, 1], is the pair's sync similarity (positive = in sync, as its training BCE reads it). The
score follows `sync_w2l`'s rules exactly, through the same code (`tfbench.metrics.sync_windows`): every
5-frame window at stride 1 with the mel window starting at int(80 * v / fps), windows past the end of the
audio not scored, a skip reason for a clip without a window, the mean cosine per clip with each window's
value kept (the paper's Figure 1 curves), and the offset search over -15..+15 against zero-padded audio
embeddings with LSE's order and sign. Only the network differs: the windows enter AVSyncNet as its training
feeds them (RGB in [0, 1], the lower half resized to the config's `visual_size` by `visual_input`).

All windows run batched through the model on its device, all offsets come from one matrix product, and the
model is loaded once per metric. A checkpoint may carry a `label` (an export by `tfbench train export`: the
packaged demo weights say they are synthetic-data demo weights); the metric records it in the run's metric
settings beside its numbers (`avsync_weights_label`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import Tensor

from tfbench import audio as tf_audio
from tfbench import weights
from tfbench.metrics.clip import METRICS, Clip, ClipMetric, ClipValue, MetricSettings
from tfbench.metrics.sync_windows import (
    DEFAULT_BATCH_SIZE,
    FPS,
    VSHIFT,
    SyncWindowResult,
    plan_windows,
    skipped_result,
    window_result,
)

if TYPE_CHECKING:
    from tfbench.models.avsyncnet import AVSyncNet

__all__ = ["AVSyncClipMetric", "AVSyncResult", "avsync_for_clip", "avsync_for_clip_wav", "embed_windows"]

METRIC = "avsync"


@dataclass(frozen=True)
class AVSyncResult(SyncWindowResult):
    """AVSyncNet's sync score of one clip (fields: `SyncWindowResult`); cosines lie in [-1, 1]."""


def embed_windows(model: AVSyncNet, windows: Tensor, mels: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
    """(N, D) unit video embeddings of `windows` (N, 5, 96, 96, 3) uint8 and audio ones of `mels` (N, 80, 16).

    Frames are converted as AVSyncNet's training converts them (`to_frames`: (B, 5, 3, S, S) in [0, 1]),
    then `visual_input` takes the lower half at the config's `visual_size`.
    """
    from tfbench.models.avsyncnet import visual_input
    from tfbench.models.training.data import to_frames

    device = next(model.parameters()).device
    size = model.config.visual_size
    with torch.inference_mode():
        video = [
            model.embed_video(visual_input(to_frames(windows[start : start + batch_size], device), size))
            for start in range(0, windows.shape[0], batch_size)
        ]
        audio = [
            model.embed_audio(mels[start : start + batch_size, None].to(device, torch.float32))
            for start in range(0, mels.shape[0], batch_size)
        ]
    return torch.cat(video), torch.cat(audio)


def avsync_for_clip(
    model: AVSyncNet,
    frames: Tensor,
    mel: Tensor | np.ndarray,
    fps: float = FPS,
    vshift: int = VSHIFT,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> AVSyncResult:
    """AVSyncNet's sync score of one clip, with the offset search.

    Args:
        model: an `AVSyncNet` in eval mode (e.g. from `load_avsyncnet`); it runs on its device.
        frames: generated (T, 96, 96, 3) or (T, 3, 96, 96) uint8 RGB face crops, on any device.
        mel: the clip's (80, Tm) Wav2Lip mel (`tfbench.audio.wav2lip_mel`, 80 steps per second).
        fps: the video frame rate (sets each frame's mel window).
        vshift: offsets searched are -vshift..+vshift frames.
        batch_size: windows per forward pass (memory only).

    Returns:
        An `AVSyncResult`; a clip with fewer than 5 frames, or audio shorter than one window, is skipped.

    Raises:
        TfbenchError: naming avsync and the shapes, for frames or mel of the wrong shape or dtype.
    """
    plan = plan_windows(frames, mel, fps, vshift, batch_size, METRIC)
    if plan.skipped is not None:
        return skipped_result(AVSyncResult, plan)
    video_emb, audio_emb = embed_windows(model, plan.windows, plan.mels, batch_size)
    return window_result(AVSyncResult, plan, video_emb, audio_emb, vshift)


def avsync_for_clip_wav(
    model: AVSyncNet,
    frames: Tensor,
    wav: Tensor | np.ndarray,
    sample_rate: int = tf_audio.SAMPLE_RATE,
    fps: float = FPS,
    vshift: int = VSHIFT,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> AVSyncResult:
    """`avsync_for_clip` from a mono waveform (int16, or float in [-1, 1]; resampled to 16 kHz)."""
    mel = tf_audio.wav2lip_mel(wav, sample_rate)
    return avsync_for_clip(model, frames, mel, fps, vshift, batch_size)


@METRICS.register(METRIC)
class AVSyncClipMetric(ClipMetric):
    """AVSyncNet: mean cosine of generated 5-frame windows with their mel windows, and the AV offset.

    Row values: `avsync` (NaN for a skipped clip), `avsync_offset` (frames, LSE's sign; None when skipped),
    `avsync_skip` (the reason, or None). The clip's crops must be 96x96 (the crop AVSyncNet trains on).
    """

    directions: ClassVar[dict[str, bool]] = {METRIC: True}
    weights: ClassVar[tuple[str, ...]] = ("avsyncnet",)

    def __init__(self, settings: MetricSettings) -> None:
        from tfbench.models.training.checkpoint import load_avsyncnet

        _, self.model = load_avsyncnet(weights.resolve("avsyncnet", settings.overrides), settings.device)
        self.settings = settings

    def update(self, clip: Clip) -> dict[str, ClipValue]:
        frames = torch.as_tensor(clip.generated).to(self.settings.device)
        result = avsync_for_clip_wav(
            self.model, frames, clip.audio, clip.sample_rate, clip.fps, batch_size=self.settings.batch_size
        )
        return {"avsync": result.score, "avsync_offset": result.offset, "avsync_skip": result.skipped}

    def settings_record(self) -> dict[str, str]:
        """The checkpoint's label, where it has one (the demo weights say they are synthetic-data weights)."""
        return {"avsync_weights_label": self.model.label} if self.model.label else {}
