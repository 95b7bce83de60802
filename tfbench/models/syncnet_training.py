"""A small, reusable trainer for syncnet_python's `S` (contrastive loss on in-sync vs shifted pairs).

Why: tests and demos need an `S` that has learnt audio-lip sync (random weights give meaningless offsets),
and the published `syncnet_v2.model` cannot be downloaded here. The recipe is that of syncnet_python's
paper (Chung & Zisserman, "Out of time", 2016): pairs of a 5-frame video window and a 0.2 s MFCC window,
positive when aligned and negative when the audio is shifted, the contrastive loss
`y d^2 + (1 - y) max(margin - d, 0)^2` on the L2 distance `d` of the two 1024-d embeddings, and Adam.
One addition: the reference's offset search pads the audio embeddings with zero vectors (DESIGN.md
section 4), so a video embedding near the origin makes the padded ends of the search (offsets near +-15)
look in sync; every video embedding is therefore also pushed `padding_margin` away from zero, i.e. the
zero vector is one more negative (`padding_negative` weights that term).

Cost shapes the design. One forward pass of the lip tower is ~1.6 GMAC per window, about 0.1 s on two
CPU cores, so training all of `S` is GPU work (`train_from="all"`: every layer, windows fed each step).
With `train_from="fc"` (default) the convolutional towers stay at their seeded random initialisation,
their BatchNorm statistics calibrated on the training windows (`calibrate_batchnorm`); the 512-d
conv features of every window are computed once (`cached_features`) and only the FC heads `netfcaud` /
`netfclip` train, many epochs over that cache at milliseconds per step (measured on 2 shared cores:
16 clips of 1 s, i.e. 336 windows + 32 for calibration, took 20-50 s of features and 17-25 s for 600
steps). Either way the result is a complete `SyncNetS`, saved by `save_syncnet_v2` in the published format.

Data: a `SyncClip` is one clip as the metric sees it: BGR 224x224 uint8 crops, the 16 kHz audio and its
python_speech_features MFCC. `synthetic_sync_clips` makes them from `tfbench.data.synthetic` clips with the
crops the runner makes for `--detector none`: syncnet_python's 224 rule on the whole-frame box. Window v
of a clip is frames v..v+4 with MFCC steps 4v..4v+19, as in the metric.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tfbench.data.synthetic import SynthConfig
from tfbench.errors import TfbenchError
from tfbench.models.syncnet_python import SyncNetS

__all__ = [
    "SyncClip",
    "TrainConfig",
    "TrainResult",
    "cached_features",
    "calibrate_batchnorm",
    "clip_windows",
    "contrastive_loss",
    "save_syncnet_v2",
    "sync_clip",
    "synthetic_sync_clips",
    "train_syncnet",
]

TrainFrom = Literal["fc", "all"]
_FRAMES, _STEPS, _WINDOW = 5, 4, 20  # frames per window, MFCC steps per frame, MFCC steps per window
_BatchNorm = nn.modules.batchnorm._BatchNorm


@dataclass(frozen=True)
class SyncClip:
    """One clip as `S` sees it: `frames` (T, 224, 224, 3) uint8 BGR crops, `wav` float32 16 kHz mono,
    `mfcc` (13, Ta) float32 python_speech_features MFCC of `wav`, the planted AV offset (syncnet_python's
    sign: > 0 means the video lags) and a name."""

    frames: np.ndarray
    wav: np.ndarray
    mfcc: np.ndarray
    offset: int = 0
    name: str = ""

    @property
    def n_windows(self) -> int:
        """Windows with 5 frames and 20 MFCC steps."""
        audio = (self.mfcc.shape[1] - _WINDOW) // _STEPS + 1 if self.mfcc.shape[1] >= _WINDOW else 0
        return max(0, min(len(self.frames) - _FRAMES + 1, audio))


def sync_clip(frames_bgr: np.ndarray, wav: np.ndarray, offset: int = 0, name: str = "") -> SyncClip:
    """A `SyncClip` from BGR 224 crops and 16 kHz audio (float in [-1, 1] or int16); computes the MFCC."""
    from tfbench.audio import syncnet_mfcc

    frames = np.ascontiguousarray(frames_bgr)
    if frames.ndim != 4 or frames.shape[1:] != (224, 224, 3) or frames.dtype != np.uint8:
        raise TfbenchError(f"S needs (T, 224, 224, 3) uint8 crops, got {frames.dtype} {frames.shape}")
    return SyncClip(frames, np.asarray(wav, np.float32), np.asarray(syncnet_mfcc(wav)), offset, name)


def synthetic_sync_clips(
    config: SynthConfig, which: Sequence[tuple[int, int]] | None = None
) -> list[SyncClip]:
    """Generate synthetic clips in memory and crop them as the runner's `--detector none` LSE path does.

    `which` lists (speaker, clip) indices (default: all of `config`). Crops:
    `preset("syncnet_pipeline", detector="none", coverage="full", min_track=0, min_face_size=0)`, i.e.
    syncnet_python's 224 rule (crop_scale 0.4, pad 110) on the whole-frame box, then RGB -> BGR.
    """
    from tfbench.data.faces import create, preset, process_frames
    from tfbench.data.synthetic import generate_clip

    if config.sample_rate != 16000 or config.fps != 25:
        raise TfbenchError("S works at 25 fps and 16 kHz; generate the clips at those rates")
    settings = preset("syncnet_pipeline", detector="none", coverage="full", min_track=0, min_face_size=0)
    detector = create(settings)
    pairs = (
        which if which is not None else [(s, c) for s in range(config.speakers) for c in range(config.clips)]
    )
    clips = []
    for speaker, index in pairs:
        clip = generate_clip(config, speaker, index)
        crops = process_frames(clip.frames, settings, detector, float(config.fps))
        if not crops.ok:
            raise TfbenchError(f"synthetic clip {clip.relpath}: no crops ({crops.skip_reason})")
        clips.append(sync_clip(crops.crops[..., ::-1], clip.audio, clip.offset_frames, clip.relpath))
    return clips


def clip_windows(clip: SyncClip) -> tuple[Tensor, Tensor]:
    """All windows of a clip as views: video (N, 3, 5, 224, 224) uint8 and audio (N, 1, 13, 20) float32."""
    n = clip.n_windows
    frames = torch.from_numpy(clip.frames).permute(3, 0, 1, 2)  # (3, T, H, W)
    video = frames.unfold(1, _FRAMES, 1).permute(1, 0, 4, 2, 3)[:n]
    audio = torch.from_numpy(clip.mfcc).unfold(1, _WINDOW, _STEPS).permute(1, 0, 2)[:n, None]
    return video, audio


@dataclass(frozen=True)
class TrainConfig:
    """How to train (see the module docstring for `train_from`).

    Negatives take the audio `min_shift`..`max_shift` frames away, either sign (a shift of 1 is left out by
    default: neighbouring windows share four of their five frames); `positive_fraction` of each batch is
    aligned. `calibration_windows` windows spread over the clips set the frozen BatchNorm statistics;
    `feature_batch` windows go through the towers per pass when caching. `threads`: torch's intra-op
    threads during the training steps only (None: unchanged); on a CPU shared with other jobs one thread
    avoided OpenMP barrier waits that made the small head matrices ~10x slower here.
    """

    steps: int = 600
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    margin: float = 20.0
    padding_margin: float = 40.0
    padding_negative: float = 1.0
    min_shift: int = 2
    max_shift: int = 15
    positive_fraction: float = 0.5
    train_from: TrainFrom = "fc"
    calibration_windows: int = 32
    feature_batch: int = 16
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    log_every: int = 50

    def __post_init__(self) -> None:
        if self.train_from not in ("fc", "all"):
            raise TfbenchError(f"train_from must be 'fc' or 'all', got {self.train_from!r}")
        if not 1 <= self.min_shift <= self.max_shift or self.steps < 0 or self.batch_size < 2:
            raise TfbenchError("need 1 <= min_shift <= max_shift, steps >= 0 and batch_size >= 2")
        if not 0.0 < self.positive_fraction < 1.0 or min(self.margin, self.padding_margin) <= 0:
            raise TfbenchError("need 0 < positive_fraction < 1, margin > 0 and padding_margin > 0")
        if self.padding_negative < 0:
            raise TfbenchError(f"padding_negative must be >= 0, got {self.padding_negative}")

    def replace(self, **changes: object) -> TrainConfig:
        """A copy with `changes` applied (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TrainResult:
    """The trained model (eval mode, on the config's device), the loss of every step, and the seconds
    spent on BatchNorm calibration + feature caching and on the training steps."""

    model: SyncNetS
    losses: tuple[float, ...]
    feature_seconds: float
    train_seconds: float


def contrastive_loss(distance: Tensor, positive: Tensor, margin: float) -> Tensor:
    """The paper's contrastive loss: the mean of `d^2` (positives) and `max(margin - d, 0)^2` (negatives)."""
    return torch.where(positive, distance.square(), F.relu(margin - distance).square()).mean()


def _towers(model: SyncNetS) -> tuple[nn.Sequential, nn.Sequential]:
    return model.netcnnlip, model.netcnnaud


def calibrate_batchnorm(model: SyncNetS, clips: Sequence[SyncClip], n_windows: int, batch: int = 16) -> None:
    """Set the running statistics of the convolution towers' BatchNorms to their averages over about
    `n_windows` windows spread over `clips`, as training would leave them (PyTorch's defaults, mean 0 and
    variance 1, give a random tower's features an arbitrary scale)."""
    device = next(model.parameters()).device
    norms = [m for tower in _towers(model) for m in tower.modules() if isinstance(m, _BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the calibration batches
    windows = [clip_windows(c) for c in clips]
    pairs = [(c, v) for c, clip in enumerate(clips) for v in range(clip.n_windows)]
    picked = pairs[:: max(1, len(pairs) // max(n_windows, 1))][:n_windows]
    lip, aud = _towers(model)
    lip.train(), aud.train()
    with torch.no_grad():
        for start in range(0, len(picked) - 1, batch):  # BatchNorm needs two samples in train mode
            chunk = picked[start : start + batch]
            lip(torch.stack([windows[c][0][v] for c, v in chunk]).to(device, torch.float32))
            aud(torch.stack([windows[c][1][v] for c, v in chunk]).to(device, torch.float32))
    for norm in norms:
        norm.momentum = 0.1
    lip.eval(), aud.eval()


def cached_features(
    model: SyncNetS, clips: Sequence[SyncClip], batch: int = 16
) -> tuple[list[Tensor], list[Tensor]]:
    """Per clip, the (N, 512) lip and audio conv features of every window (eval mode, no grad)."""
    device = next(model.parameters()).device
    lip, aud = _towers(model)
    lip.eval(), aud.eval()
    lip_out, aud_out = [], []
    with torch.no_grad():
        for clip in clips:
            video, audio = clip_windows(clip)
            lip_out.append(
                torch.cat([lip(v.to(device, torch.float32)).flatten(1) for v in video.split(batch)])
            )
            aud_out.append(
                torch.cat([aud(a.to(device, torch.float32)).flatten(1) for a in audio.split(batch)])
            )
    return lip_out, aud_out


def _sample_pairs(
    counts: Sequence[int], config: TrainConfig, generator: torch.Generator
) -> tuple[list[tuple[int, int, int]], Tensor]:
    """A batch of (clip, video window, audio window) and its positive mask: windows uniform over all
    clips; a negative's audio is shifted by +-(min_shift..max_shift), the other sign where the shift
    leaves the clip, and any window at least min_shift away where both do."""
    n = config.batch_size
    starts = np.cumsum([0, *counts])
    flat = torch.randint(0, int(starts[-1]), (n,), generator=generator).tolist()
    positive = torch.rand(n, generator=generator) < config.positive_fraction
    shifts = torch.randint(config.min_shift, config.max_shift + 1, (n,), generator=generator)
    shifts = shifts * (torch.randint(0, 2, (n,), generator=generator) * 2 - 1)
    picks = torch.rand(n, generator=generator).tolist()
    triples = []
    for i, index in enumerate(flat):
        c = int(np.searchsorted(starts, index, side="right")) - 1
        v = index - int(starts[c])
        a = v
        if not positive[i]:
            a = next((v + s for s in (int(shifts[i]), -int(shifts[i])) if 0 <= v + s < counts[c]), -1)
            if a < 0:
                far = [w for w in range(counts[c]) if abs(w - v) >= config.min_shift]
                positive[i] = not far
                a = far[int(picks[i] * len(far))] if far else v
        triples.append((c, v, a))
    return triples, positive


def train_syncnet(
    clips: Sequence[SyncClip],
    config: TrainConfig | None = None,
    model: SyncNetS | None = None,
    log: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train `S` (a fresh one seeded with `config.seed`, or `model`) on the aligned windows of `clips`.

    The clips must be in sync (offset 0): window v's positive is audio window v. With `train_from="fc"`
    and `steps=0` the result is the untrained starting point (seeded towers, calibrated BatchNorms).
    `log(step, loss)` is called every `config.log_every` steps. Returns the model in eval mode.

    Raises:
        TfbenchError: a clip with a nonzero offset, or fewer than two windows in all.
    """
    config = config or TrainConfig()
    if any(c.offset != 0 for c in clips):
        raise TfbenchError("training clips must be in sync (offset 0): positives are the aligned windows")
    counts = [c.n_windows for c in clips]
    if sum(counts) < 2:
        raise TfbenchError("training needs at least two 5-frame windows")
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    model = (model or SyncNetS()).to(device)

    start = time.perf_counter()
    windows = [clip_windows(c) for c in clips]
    lip_cache: list[Tensor] = []
    aud_cache: list[Tensor] = []
    if config.train_from == "fc":
        calibrate_batchnorm(model, clips, config.calibration_windows, config.feature_batch)
        if config.steps:
            lip_cache, aud_cache = cached_features(model, clips, config.feature_batch)
    feature_seconds = time.perf_counter() - start

    heads = [model.netfclip, model.netfcaud]
    trained = heads if config.train_from == "fc" else [*_towers(model), *heads]
    for p in model.parameters():
        p.requires_grad_(False)
    parameters = [p for part in trained for p in part.parameters()]
    for p in parameters:
        p.requires_grad_(True)
    optimiser = torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    model.eval()
    for part in trained:
        part.train()

    generator = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    previous_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    start = time.perf_counter()
    try:
        for step in range(config.steps):
            triples, positive = _sample_pairs(counts, config, generator)
            if config.train_from == "fc":
                lip_in = torch.stack([lip_cache[c][v] for c, v, _ in triples])
                aud_in = torch.stack([aud_cache[c][a] for c, _, a in triples])
                video_emb, audio_emb = model.netfclip(lip_in), model.netfcaud(aud_in)
            else:
                lip_in = torch.stack([windows[c][0][v] for c, v, _ in triples]).to(device, torch.float32)
                aud_in = torch.stack([windows[c][1][a] for c, _, a in triples]).to(device, torch.float32)
                video_emb, audio_emb = model.forward_video(lip_in), model.forward_audio(aud_in)
            loss = contrastive_loss(
                F.pairwise_distance(video_emb, audio_emb), positive.to(device), config.margin
            )
            if config.padding_negative:
                away = F.relu(config.padding_margin - video_emb.norm(dim=1)).square().mean()
                loss = loss + config.padding_negative * away
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            if log is not None and step % config.log_every == 0:
                log(step, losses[-1])
    finally:
        torch.set_num_threads(previous_threads)
        for p in model.parameters():
            p.requires_grad_(True)
    return TrainResult(model.eval(), tuple(losses), feature_seconds, time.perf_counter() - start)


def save_syncnet_v2(model: SyncNetS, path: str | Path) -> Path:
    """Write `model` as the published `syncnet_v2.model`: a plain state_dict on the CPU with exactly the
    published keys (BatchNorm's `num_batches_tracked` counters, absent from that file, are left out)."""
    path = Path(path)
    state = {
        k: v.detach().cpu() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path
