"""The lip-sync experts the stability study compares, as a registry: name -> how to load it and embed a clip.

Each expert embeds every 5-frame window of a clip's face crops and the audio window that belongs to it,
exactly as its metric builds the windows, so the study measures the numbers the metrics report:

- `syncnet`: syncnet_python's `S` (weights `syncnet_v2`) on the 224 crops and MFCC windows of the LSE metric
  (`tfbench.metrics.lse`: `plan_windows`, `lse_windows`, `embed_windows`; the reference's T - 5 windows);
  its clip scores add that clip's LSE-C and LSE-D, computed from the same embeddings.
- `avsyncnet`: the paper's AVSyncNet (a `tfbench train avsyncnet` checkpoint, weights `avsyncnet`) on the
  96x96 crops and Wav2Lip mel windows of the `avsync` metric (`tfbench.metrics.sync_windows.plan_windows`),
  the frames converted as training and `avsync` convert them;
- `wav2lip`: Wav2Lip's expert SyncNet (weights `wav2lip_syncnet`) on the same windows, as `sync_w2l`.

The similarity of a window is the cosine of its video and audio embeddings (offset 0). Embeddings are kept
(on the CPU) so that off-sync pairs can be scored without running the networks again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from tfbench import audio as tf_audio
from tfbench.metrics import avsync, sync_windows
from tfbench.metrics.lse import (
    embed_windows,
    lse_from_embeddings,
    lse_windows,
    plan_windows,
    prepare_syncnet,
)
from tfbench.models.syncnet_python import load_syncnet_v2
from tfbench.models.training.checkpoint import load_avsyncnet
from tfbench.models.wav2lip_syncnet import expert_face_input, load_wav2lip_syncnet
from tfbench.registry import Registry

__all__ = ["EXPERTS", "SCORE_KEY", "ExpertWindows", "StabilityExpert", "pair_similarity"]

SCORE_KEY = "sync"
"""The clip score every expert has: the mean of its window similarities."""


def pair_similarity(video: Tensor, audio: Tensor) -> Tensor:
    """(N,) float64 cosine of row i of `video` with row i of `audio` (both (N, D))."""
    return F.cosine_similarity(video.double(), audio.double(), dim=-1, eps=1e-8)


@dataclass(frozen=True)
class ExpertWindows:
    """One clip through one expert: (N, D) window embeddings, their (N,) cosines, and per-clip scores."""

    video: Tensor
    audio: Tensor
    similarity: Tensor
    clip_scores: dict[str, float]

    @classmethod
    def of(cls, video: Tensor, audio: Tensor, extra: dict[str, float] | None = None) -> ExpertWindows:
        """Embeddings (moved to the CPU) with their cosines; `extra` joins the mean-cosine clip score."""
        video, audio = video.detach().float().cpu(), audio.detach().float().cpu()
        similarity = pair_similarity(video, audio)
        return cls(video, audio, similarity, {SCORE_KEY: float(similarity.mean()), **(extra or {})})


class StabilityExpert(ABC):
    """A loaded expert. `crop_size` says which face crops it reads (224: LSE's rule, 96: Wav2Lip's),
    `weights_name` which weights entry (or `--weights NAME=PATH`) holds its file, `clip_score_directions`
    its per-clip scores (key -> higher is better)."""

    crop_size: ClassVar[int]
    weights_name: ClassVar[str]
    clip_score_directions: ClassVar[dict[str, bool]] = {SCORE_KEY: True}

    @abstractmethod
    def __init__(self, path: Path, device: str, batch_size: int) -> None: ...

    @abstractmethod
    def windows(self, crops: np.ndarray, wav: np.ndarray, fps: float) -> ExpertWindows | str:
        """Embed the windows of (T, S, S, 3) uint8 RGB crops and 16 kHz mono `wav` of the same duration;
        a clip with no window gives the reason as a string."""


EXPERTS: Registry[type[StabilityExpert]] = Registry("sync expert")


def _batches(n: int, batch_size: int) -> list[slice]:
    return [slice(start, start + batch_size) for start in range(0, n, batch_size)]


def _plan(crops: np.ndarray, wav: np.ndarray, fps: float, expert: str) -> sync_windows.WindowPlan:
    """The mel-based metrics' windows of a clip (`tfbench.metrics.sync_windows`): window v of the 96 px
    crops with the Wav2Lip mel window of its first frame, N = min(T - 4, frames with a whole mel window)."""
    mel = tf_audio.wav2lip_mel(wav)
    return sync_windows.plan_windows(torch.from_numpy(crops), mel, fps, 0, 1, expert)


@EXPERTS.register("syncnet")
class SyncNetExpert(StabilityExpert):
    """syncnet_python's S on the LSE metric's windows; clip scores add LSE-C and LSE-D."""

    crop_size = 224
    weights_name = "syncnet_v2"
    clip_score_directions: ClassVar[dict[str, bool]] = {SCORE_KEY: True, "lse_c": True, "lse_d": False}

    def __init__(self, path: Path, device: str, batch_size: int) -> None:
        self.model = prepare_syncnet(load_syncnet_v2(path, device))  # as the LSE metric loads it
        self.batch_size = batch_size

    def windows(self, crops: np.ndarray, wav: np.ndarray, fps: float) -> ExpertWindows | str:
        mfcc = torch.as_tensor(tf_audio.syncnet_mfcc(wav))
        plan = plan_windows(len(crops), mfcc.shape[1], len(wav))
        if plan.skipped:
            return plan.skipped
        video, audio = lse_windows(torch.from_numpy(crops), mfcc, plan.n_windows, channel_order="rgb")
        video_emb, audio_emb = embed_windows(self.model, video, audio, self.batch_size)
        lse = lse_from_embeddings(video_emb, audio_emb, plan)
        return ExpertWindows.of(video_emb, audio_emb, {"lse_c": lse.conf, "lse_d": lse.min_dist})


@EXPERTS.register("avsyncnet")
class AVSyncNetExpert(StabilityExpert):
    """The paper's AVSyncNet on the lower halves of 96x96 face windows and Wav2Lip mel windows."""

    crop_size = 96
    weights_name = "avsyncnet"

    def __init__(self, path: Path, device: str, batch_size: int) -> None:
        _, self.net = load_avsyncnet(path, device)
        self.device = torch.device(device)
        self.batch_size = batch_size

    def windows(self, crops: np.ndarray, wav: np.ndarray, fps: float) -> ExpertWindows | str:
        plan = _plan(crops, wav, fps, "avsyncnet")
        if plan.skipped is not None:
            return plan.skipped
        video, audio = avsync.embed_windows(self.net, plan.windows, plan.mels, self.batch_size)
        return ExpertWindows.of(video, audio)


@EXPERTS.register("wav2lip")
class Wav2LipExpert(StabilityExpert):
    """Wav2Lip's expert SyncNet on the `sync_w2l` metric's windows (cosine in [0, 1])."""

    crop_size = 96
    weights_name = "wav2lip_syncnet"

    def __init__(self, path: Path, device: str, batch_size: int) -> None:
        self.model = load_wav2lip_syncnet(path, device)
        self.device = torch.device(device)
        self.batch_size = batch_size

    def windows(self, crops: np.ndarray, wav: np.ndarray, fps: float) -> ExpertWindows | str:
        plan = _plan(crops, wav, fps, "wav2lip")
        if plan.skipped is not None:
            return plan.skipped
        video, audio = [], []
        with torch.inference_mode():
            for part in _batches(plan.n_windows, self.batch_size):
                video.append(self.model.forward_video(expert_face_input(plan.windows[part].to(self.device))))
                audio.append(self.model.forward_audio(plan.mels[part, None].to(self.device, torch.float32)))
        return ExpertWindows.of(torch.cat(video), torch.cat(audio))
