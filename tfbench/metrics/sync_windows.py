"""What the mel-based sync scores share: 5-frame windows, their mel windows, the cosine and the offset search.

Two metrics score generated 96x96 crops against the Wav2Lip mel with a sync expert: `sync_w2l` (Wav2Lip's
expert SyncNet, `tfbench.metrics.expert_sync`) and `avsync` (the paper's AVSyncNet, `tfbench.metrics.avsync`).
They differ only in the network that embeds a window; this module holds the rest, so the two scores are
computed by the same rules:

- windows: every 5-frame window of the crops, stride 1, starting at frames 0..T-5; window v is paired with
  the mel window of its first frame, steps int(80 * v / fps) .. +16 (`tfbench.audio`'s formula, as Wav2Lip's
  training does). A window whose mel would run past the end of the audio is not scored (clamping it would
  pair it with the wrong audio); a clip without any window gets a `skipped` reason, not a crash.
- score: the mean over windows of the cosine of the two embeddings; each window's value is kept (the
  paper's Figure 1 plots such curves).
- offset search, LSE's search with the expert: window v's video embedding against the audio embedding of
  window v - o, o = -vshift..+vshift (default 15). As syncnet_python pads the audio embeddings with zeros at
  both ends, a pair that falls outside the clip's N windows counts as similarity 0 and every offset's mean is
  over all N windows: `curve[j]` is that mean at offset vshift - j (LSE's order, so a positive offset means
  the video lags the audio), `offset` = vshift - argmax, `best_score` = the maximum. The padding makes large
  offsets, whose means rest on few real pairs, lose to a comparable similarity near 0 rather than win by
  noise; as in LSE, the clip length therefore moves `best_score` (never `score`, the offset-0 value).

All offsets come from one matrix product of the N video and N audio embeddings, with no loop over windows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from tfbench import audio as tf_audio
from tfbench.errors import TfbenchError

__all__ = [
    "CROP",
    "DEFAULT_BATCH_SIZE",
    "FPS",
    "VSHIFT",
    "WINDOW_FRAMES",
    "SyncWindowResult",
    "WindowPlan",
    "check_frames",
    "frame_windows",
    "n_full_mel_windows",
    "offset_curve",
    "plan_windows",
    "skipped_result",
    "window_result",
]

VSHIFT = 15
DEFAULT_BATCH_SIZE = 32
FPS = 25.0
CROP = 96
WINDOW_FRAMES = 5
"""Video frames per window: 0.2 s at 25 fps, the span of one 16-step mel window."""


@dataclass(frozen=True)
class SyncWindowResult:
    """A window sync score of one clip and what it was computed from (see the module docstring).

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


ResultT = TypeVar("ResultT", bound=SyncWindowResult)


def n_full_mel_windows(n_mel_steps: int, fps: float, metric: str = "sync") -> int:
    """How many video frames (from frame 0) have their whole 16-step mel window inside `n_mel_steps`.

    Frame i's window starts at int(i * (80 / fps)), the expression of `tfbench.audio.mel_window_starts`
    (which clamps the later windows; those are exactly the ones this count leaves out). `metric` names the
    caller in errors.
    """
    if not np.isfinite(fps) or fps <= 0:
        raise TfbenchError(f"{metric}: fps must be a positive number, got {fps!r}")
    last_start = n_mel_steps - tf_audio.MEL_WINDOW
    if last_start < 0:
        return 0
    step = float(tf_audio.MEL_STEPS_PER_SECOND) / fps
    n = int((last_start + 1) / step) + 2  # candidates past the end, trimmed with the exact expression
    starts = (np.arange(n, dtype=np.float64) * step).astype(np.int64)
    return int((starts <= last_start).sum())


def check_frames(frames: Tensor, metric: str) -> Tensor:
    """(T, 96, 96, 3) or (T, 3, 96, 96) uint8 RGB -> a (T, 96, 96, 3) view; anything else names `metric`."""
    if not isinstance(frames, Tensor) or frames.dtype != torch.uint8:
        what = frames.dtype if isinstance(frames, Tensor) else type(frames).__name__
        raise TfbenchError(f"{metric}: frames must be a uint8 RGB tensor, got {what}")
    if frames.ndim == 4 and frames.shape[1] == 3 and frames.shape[3] != 3:
        frames = frames.permute(0, 2, 3, 1)
    if frames.ndim != 4 or tuple(frames.shape[1:]) != (CROP, CROP, 3):
        raise TfbenchError(
            f"{metric}: frames must be (T, 96, 96, 3) or (T, 3, 96, 96) face crops (resize other crops to "
            f"96x96 first), got {tuple(frames.shape)}"
        )
    return frames


def frame_windows(frames: Tensor, n_windows: int | None = None, metric: str = "sync") -> Tensor:
    """(N, 5, 96, 96, 3) strided view (no copy): window v = frames[v : v + 5]; default N = T - 4."""
    frames = check_frames(frames, metric)
    available = max(0, frames.shape[0] - WINDOW_FRAMES + 1)
    n = available if n_windows is None else n_windows
    if not 0 <= n <= available:
        raise TfbenchError(
            f"{metric}: {n} windows need {n + WINDOW_FRAMES - 1} frames, got {frames.shape[0]}"
        )
    if n == 0:
        return frames.new_zeros((0, WINDOW_FRAMES, CROP, CROP, 3))
    # unfold appends the window axis last: (N', 96, 96, 3, 5) -> (N', 5, 96, 96, 3)
    return frames.unfold(0, WINDOW_FRAMES, 1).permute(0, 4, 1, 2, 3)[:n]


@dataclass(frozen=True)
class WindowPlan:
    """The windows of one clip that a sync metric scores: `windows` (N, 5, 96, 96, 3) uint8 paired with
    `mels` (N, 80, 16); N = 0 with a `skipped` reason when the clip has no whole window."""

    windows: Tensor
    mels: Tensor
    n_frames: int
    n_audio_frames: int
    skipped: str | None

    @property
    def n_windows(self) -> int:
        return int(self.windows.shape[0])


def plan_windows(
    frames: Tensor,
    mel: Tensor | np.ndarray,
    fps: float,
    vshift: int,
    batch_size: int,
    metric: str,
) -> WindowPlan:
    """Check a clip's inputs and pair each scorable 5-frame window with its mel window.

    Raises:
        TfbenchError: naming `metric` and the shapes, for frames or mel of the wrong shape or dtype, or a
            batch size below 1, a negative vshift, a non-positive fps.
    """
    frames = check_frames(frames, metric)
    mel = torch.as_tensor(mel)
    if mel.ndim != 2 or mel.shape[0] != tf_audio.N_MELS:
        raise TfbenchError(f"{metric}: mel must be a (80, T) Wav2Lip mel spectrogram, got {tuple(mel.shape)}")
    if batch_size < 1 or vshift < 0:
        raise TfbenchError(f"{metric}: batch_size must be >= 1 and vshift >= 0, got {batch_size}, {vshift}")
    n_frames = frames.shape[0]
    n_audio = n_full_mel_windows(mel.shape[1], fps, metric)
    n_windows = max(0, min(n_frames - WINDOW_FRAMES + 1, n_audio))
    if n_windows == 0:
        reason = (
            f"no 5-frame window with a whole mel window: {n_frames} frames, {mel.shape[1]} mel steps "
            f"({n_audio} frames of audio at {fps:g} fps)"
        )
        empty = mel.new_zeros((0, tf_audio.N_MELS, tf_audio.MEL_WINDOW))
        return WindowPlan(frame_windows(frames, 0, metric), empty, n_frames, n_audio, reason)
    mels = tf_audio.mel_windows(mel, n_windows, fps)  # (N, 80, 16), none clamped
    return WindowPlan(frame_windows(frames, n_windows, metric), mels, n_frames, n_audio, None)


def offset_curve(video_emb: Tensor, audio_emb: Tensor, vshift: int = VSHIFT, metric: str = "sync") -> Tensor:
    """(2 * vshift + 1,) float64: index j = mean over the N video windows v of cos(video[v], audio[v - o]),
    o = vshift - j, with 0 for a pair outside the M audio windows (the zero padding of the module docstring).

    Both embeddings unit length (what the experts output): one (N, M) product of cosines, then a gather of
    its diagonals, with no loop over windows or offsets.

    Example:
        >>> audio = torch.eye(4)
        >>> offset_curve(audio[[0, 0, 1, 2]], audio, vshift=1).tolist()  # window v shows audio v - 1
        [0.75, 0.25, 0.0]
    """
    if video_emb.ndim != 2 or audio_emb.ndim != 2 or video_emb.shape[1] != audio_emb.shape[1]:
        raise TfbenchError(
            f"{metric}: embeddings must be (N, D) and (M, D), got {tuple(video_emb.shape)} and "
            f"{tuple(audio_emb.shape)}"
        )
    sims = video_emb.double() @ audio_emb.double().T
    offsets = vshift - torch.arange(2 * vshift + 1, device=sims.device)
    audio_index = torch.arange(sims.shape[0], device=sims.device)[:, None] - offsets[None, :]  # (N, 2vs+1)
    valid = (audio_index >= 0) & (audio_index < sims.shape[1])
    gathered = sims.gather(1, audio_index.clamp(0, sims.shape[1] - 1)) * valid
    return gathered.mean(0)


def skipped_result(result_type: type[ResultT], plan: WindowPlan) -> ResultT:
    """The `result_type` of a clip whose plan has no window: NaN scores and the plan's `skipped` reason."""
    nan = float("nan")
    return result_type(nan, None, nan, (), (), 0, plan.n_frames, plan.n_audio_frames, plan.skipped)


def window_result(
    result_type: type[ResultT], plan: WindowPlan, video_emb: Tensor, audio_emb: Tensor, vshift: int
) -> ResultT:
    """The clip's `result_type` from the (N, D) embeddings of `plan`'s N windows.

    The window score is `F.cosine_similarity` of the audio and video embeddings (what Wav2Lip feeds its BCE,
    so both agree to the last bit), the curve `offset_curve`.
    """
    window_scores = F.cosine_similarity(audio_emb, video_emb, dim=-1).double()
    curve = offset_curve(video_emb, audio_emb, vshift)
    best = int(curve.argmax())
    return result_type(
        score=float(window_scores.mean()),
        offset=vshift - best,
        best_score=float(curve[best]),
        curve=tuple(curve.cpu().tolist()),
        window_scores=tuple(window_scores.cpu().tolist()),
        n_windows=plan.n_windows,
        n_frames=plan.n_frames,
        n_audio_frames=plan.n_audio_frames,
    )
