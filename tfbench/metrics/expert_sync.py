"""`sync_w2l`: the Wav2Lip expert SyncNet's sync score of generated 96x96 crops (higher is better).

Wav2Lip's expert (`tfbench.models.wav2lip_syncnet`, checkpoint-compatible with `lipsync_expert.pth`) embeds
the lower half of 5 consecutive frames and a 16-step Wav2Lip mel window; the cosine of the two unit-length
embeddings is its probability that the pair is in sync. Per clip:

- windows: every 5-frame window of the generated crops, stride 1, starting at frames 0..T-5; window v is
  paired with the mel window of its first frame, steps int(80 * v / fps) .. +16 (`tfbench.audio`'s
  formula, as Wav2Lip's training does). A window whose mel would run past the end of the audio is not
  scored (Wav2Lip's training skips such samples; clamping it would pair it with the wrong audio);
  `n_windows` records how many were scored. A clip without any window gets a `skipped` reason, not a crash.
- score: the mean over windows of the cosine; `window_scores` keeps each window's value (the paper's
  Figure 1 plots such curves).
- offset search, LSE's search with the expert: window v's video embedding against the audio embedding of
  window v - o, for offsets o = -vshift..+vshift (default 15). As syncnet_python pads the audio embeddings
  with zeros at both ends, a pair that falls outside the clip's N windows counts as similarity 0 (the
  cosine with a zero vector) and every offset's mean is over all N windows: `curve[j]` is that mean at
  offset vshift - j (LSE's order, so a positive offset means the video lags the audio, as LSE's AV
  offset), `offset` = vshift - argmax, `best_score` = the maximum. The padding makes large offsets, whose
  means rest on few real pairs, lose to a comparable similarity near 0 rather than win by noise; as in
  LSE, the clip length therefore moves `best_score` (never `score`, the offset-0 value).

All windows run batched through the model on its device (one forward per batch of windows, never a
per-window loop), and all offsets come from one matrix product. The model is loaded once per metric.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from tfbench import audio as tf_audio
from tfbench.errors import TfbenchError
from tfbench.models.wav2lip_syncnet import (
    WINDOW_FRAMES,
    Wav2LipSyncNet,
    expert_face_input,
    load_wav2lip_syncnet,
    sync_probability,
)

__all__ = [
    "ExpertSync",
    "ExpertSyncResult",
    "expert_sync_for_clip",
    "expert_sync_for_clip_wav",
    "expert_windows",
    "n_full_mel_windows",
    "offset_curve",
]

VSHIFT = 15
DEFAULT_BATCH_SIZE = 32
FPS = 25.0
CROP = 96


@dataclass(frozen=True)
class ExpertSyncResult:
    """The expert sync score of one clip and what it was computed from (see the module docstring).

    A skipped clip has NaN scores, `offset` None, empty tuples and a `skipped` reason.
    """

    score: float
    offset: int | None
    best_score: float
    curve: tuple[float, ...]
    window_scores: tuple[float, ...]
    n_windows: int
    n_frames: int
    n_audio_frames: int  # video frames whose 16-step mel window lies inside the audio
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A plain dict for a results row (tuples become lists)."""
        row = asdict(self)
        row["curve"], row["window_scores"] = list(self.curve), list(self.window_scores)
        return row


def n_full_mel_windows(n_mel_steps: int, fps: float) -> int:
    """How many video frames (from frame 0) have their whole 16-step mel window inside `n_mel_steps`.

    Frame i's window starts at int(i * (80 / fps)), the expression of `tfbench.audio.mel_window_starts`
    (which clamps the later windows; those are exactly the ones this count leaves out).
    """
    if not np.isfinite(fps) or fps <= 0:
        raise TfbenchError(f"sync_w2l: fps must be a positive number, got {fps!r}")
    last_start = n_mel_steps - tf_audio.MEL_WINDOW
    if last_start < 0:
        return 0
    step = float(tf_audio.MEL_STEPS_PER_SECOND) / fps
    n = int((last_start + 1) / step) + 2  # candidates past the end, trimmed with the exact expression
    starts = (np.arange(n, dtype=np.float64) * step).astype(np.int64)
    return int((starts <= last_start).sum())


def _frames_nhwc(frames: Tensor) -> Tensor:
    """(T, 96, 96, 3) or (T, 3, 96, 96) uint8 RGB -> a (T, 96, 96, 3) view."""
    if not isinstance(frames, Tensor) or frames.dtype != torch.uint8:
        what = frames.dtype if isinstance(frames, Tensor) else type(frames).__name__
        raise TfbenchError(f"sync_w2l: frames must be a uint8 RGB tensor, got {what}")
    if frames.ndim == 4 and frames.shape[1] == 3 and frames.shape[3] != 3:
        frames = frames.permute(0, 2, 3, 1)
    if frames.ndim != 4 or tuple(frames.shape[1:]) != (CROP, CROP, 3):
        raise TfbenchError(
            f"sync_w2l: frames must be (T, 96, 96, 3) or (T, 3, 96, 96) face crops (resize other crops to "
            f"96x96 first), got {tuple(frames.shape)}"
        )
    return frames


def expert_windows(frames: Tensor, n_windows: int | None = None) -> Tensor:
    """(N, 5, 96, 96, 3) strided view (no copy): window v = frames[v : v + 5]; default N = T - 4."""
    frames = _frames_nhwc(frames)
    available = max(0, frames.shape[0] - WINDOW_FRAMES + 1)
    n = available if n_windows is None else n_windows
    if not 0 <= n <= available:
        raise TfbenchError(
            f"sync_w2l: {n} windows need {n + WINDOW_FRAMES - 1} frames, got {frames.shape[0]}"
        )
    if n == 0:
        return frames.new_zeros((0, WINDOW_FRAMES, CROP, CROP, 3))
    # unfold appends the window axis last: (N', 96, 96, 3, 5) -> (N', 5, 96, 96, 3)
    return frames.unfold(0, WINDOW_FRAMES, 1).permute(0, 4, 1, 2, 3)[:n]


def _check_mel(mel: Tensor | np.ndarray) -> Tensor:
    mel = torch.as_tensor(mel)
    if mel.ndim != 2 or mel.shape[0] != tf_audio.N_MELS:
        raise TfbenchError(f"sync_w2l: mel must be a (80, T) Wav2Lip mel spectrogram, got {tuple(mel.shape)}")
    return mel


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


def offset_curve(video_emb: Tensor, audio_emb: Tensor, vshift: int = VSHIFT) -> Tensor:
    """(2 * vshift + 1,) float64: index j = mean over the N video windows v of cos(video[v], audio[v - o]),
    o = vshift - j, with 0 for a pair outside the M audio windows (the zero padding of the module docstring).

    Both embeddings unit length (the expert's output): one (N, M) product of cosines, then a gather of its
    diagonals, with no loop over windows or offsets.

    Example:
        >>> audio = torch.eye(4)
        >>> offset_curve(audio[[0, 0, 1, 2]], audio, vshift=1).tolist()  # window v shows audio v - 1
        [0.75, 0.25, 0.0]
    """
    if video_emb.ndim != 2 or audio_emb.ndim != 2 or video_emb.shape[1] != audio_emb.shape[1]:
        raise TfbenchError(
            f"sync_w2l: embeddings must be (N, D) and (M, D), got {tuple(video_emb.shape)} and "
            f"{tuple(audio_emb.shape)}"
        )
    sims = video_emb.double() @ audio_emb.double().T
    offsets = vshift - torch.arange(2 * vshift + 1, device=sims.device)
    audio_index = torch.arange(sims.shape[0], device=sims.device)[:, None] - offsets[None, :]  # (N, 2vs+1)
    valid = (audio_index >= 0) & (audio_index < sims.shape[1])
    gathered = sims.gather(1, audio_index.clamp(0, sims.shape[1] - 1)) * valid
    return gathered.mean(0)


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
    frames = _frames_nhwc(frames)
    mel = _check_mel(mel)
    if batch_size < 1 or vshift < 0:
        raise TfbenchError(f"sync_w2l: batch_size must be >= 1 and vshift >= 0, got {batch_size}, {vshift}")
    n_frames = frames.shape[0]
    n_audio = n_full_mel_windows(mel.shape[1], fps)
    n_windows = max(0, min(n_frames - WINDOW_FRAMES + 1, n_audio))
    if n_windows == 0:
        nan = float("nan")
        reason = (
            f"no 5-frame window with a whole mel window: {n_frames} frames, {mel.shape[1]} mel steps "
            f"({n_audio} frames of audio at {fps:g} fps)"
        )
        return ExpertSyncResult(nan, None, nan, (), (), 0, n_frames, n_audio, reason)
    mels = tf_audio.mel_windows(mel, n_windows, fps)  # (N, 80, 16), none clamped
    video_emb, audio_emb = _embed(model, expert_windows(frames, n_windows), mels, batch_size)
    window_scores = sync_probability(audio_emb, video_emb).double()
    curve = offset_curve(video_emb, audio_emb, vshift)
    best = int(curve.argmax())
    return ExpertSyncResult(
        score=float(window_scores.mean()),
        offset=vshift - best,
        best_score=float(curve[best]),
        curve=tuple(curve.cpu().tolist()),
        window_scores=tuple(window_scores.cpu().tolist()),
        n_windows=n_windows,
        n_frames=n_frames,
        n_audio_frames=n_audio,
    )


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


class ExpertSync(Metric):
    """Mean Wav2Lip-expert sync score over clips (`sync_w2l`, higher is better), with per-clip offsets.

    `update(frames, mel)` scores one clip with `expert_sync_for_clip`; `update(result)` adds an
    `ExpertSyncResult` computed elsewhere. Skipped clips are counted in `n_skipped` and left out of the
    mean, whose denominator is `n`. State: the score sum and counts (`"sum"`), per-clip score, offset,
    best score and curve (`"cat"`), so halves or processes merge into exactly the one-pass value.

    Args:
        model: a `Wav2LipSyncNet`; default: `wav2lip_syncnet` from `weights.resolve` (with `weights`, the
            `--weights NAME=PATH` overrides), loaded once onto `device`.
        fps, vshift, batch_size: passed to `expert_sync_for_clip`.
    """

    higher_is_better = True
    DIRECTIONS: ClassVar[dict[str, bool]] = {"sync_w2l": True}
    is_differentiable = False
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    score_sum: Tensor
    count: Tensor
    n_skipped: Tensor
    scores: list[Tensor]
    offsets: list[Tensor]
    best_scores: list[Tensor]
    curves: list[Tensor]

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
        super().__init__(**kwargs)
        if model is None:
            from tfbench import weights as weights_registry  # resolved only when no model is given

            model = load_wav2lip_syncnet(
                weights_registry.resolve("wav2lip_syncnet", dict(weights or {})), device
            )
        self.model = model.eval()
        self.fps, self.vshift, self.batch_size = fps, vshift, batch_size
        self.add_state("score_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_skipped", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        for name in ("scores", "offsets", "best_scores", "curves"):
            self.add_state(name, [], dist_reduce_fx="cat")

    def update(self, frames: Tensor | ExpertSyncResult, mel: Tensor | np.ndarray | None = None) -> None:
        """Score one clip (96x96 uint8 crops + its Wav2Lip mel) or add an `ExpertSyncResult`."""
        if isinstance(frames, ExpertSyncResult):
            result = frames
        else:
            if mel is None:
                raise TfbenchError("sync_w2l needs the clip's Wav2Lip mel beside its frames")
            result = expert_sync_for_clip(self.model, frames, mel, self.fps, self.vshift, self.batch_size)
        if result.skipped is not None or result.offset is None:
            self.n_skipped += 1
            return
        if len(result.curve) != 2 * self.vshift + 1:
            raise TfbenchError(
                f"sync_w2l: a result with {len(result.curve)} offsets, the metric has vshift {self.vshift}"
            )
        device = self.count.device
        self.score_sum += result.score
        self.count += 1
        self.scores.append(torch.tensor([result.score], dtype=torch.float64, device=device))
        self.offsets.append(torch.tensor([result.offset], dtype=torch.long, device=device))
        self.best_scores.append(torch.tensor([result.best_score], dtype=torch.float64, device=device))
        self.curves.append(torch.tensor([result.curve], dtype=torch.float64, device=device))

    def compute(self) -> dict[str, Tensor]:
        """{"sync_w2l": mean score over scored clips, "n": clips scored, "n_skipped"}; NaN when none."""
        return {
            "sync_w2l": self.score_sum / self.count,
            "n": self.count.clone(),
            "n_skipped": self.n_skipped.clone(),
        }

    def per_clip(self) -> dict[str, Tensor]:
        """The scored clips' score (n,), offset (n,), best_score (n,) and curve (n, 2 * vshift + 1)."""

        def cat(states: list[Tensor] | Tensor, empty: Tensor) -> Tensor:
            if isinstance(states, Tensor):  # after a distributed sync the list is one tensor
                return states
            return dim_zero_cat(states) if states else empty

        device = self.count.device
        empty = torch.zeros(0, dtype=torch.float64, device=device)
        return {
            "score": cat(self.scores, empty),
            "offset": cat(self.offsets, empty.long()),
            "best_score": cat(self.best_scores, empty),
            "curve": cat(self.curves, empty.reshape(0, 1).expand(0, 2 * self.vshift + 1)),
        }
