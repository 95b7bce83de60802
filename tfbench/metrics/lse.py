"""LSE-D, LSE-C and the audio-video offset: syncnet_python's `SyncNetInstance.evaluate`, batched.

The numbers are those of the reference (joonson/syncnet_python `evaluate` + `calc_pdist`), quirks included:

- frames used: `min(n_video_frames, n_audio_samples // 640)` (640 samples = one 25 fps frame at 16 kHz);
- windows: `v in range(0, frames_used - 5)`, one fewer than the clip holds (the reference's off-by-one);
  video window `frames[v : v + 5]`, audio window `mfcc[:, 4v : 4v + 20]`;
- the audio embeddings are padded with `vshift` (15) zero rows at both ends before the offset search, so
  the first and last windows meet zero vectors at large offsets and the clip length moves the scores;
- distance: `pairwise_distance`, i.e. `||video - audio + 1e-6||_2` (its eps is added to the difference);
- `curve[j]` = mean over windows of the distance at offset j; `min_dist` = min, `offset` = vshift - argmin,
  `conf` = median - min (torch's median of 31 values); framewise `median(curve) - dist at argmin`,
  median-filtered with kernel 9 and zero padding (scipy.signal.medfilt).

Audio length. The reference clips the frames to the audio (`min_length` above), so its audio windows are
always complete. Given MFCC only, the audio's length in frames is taken as `(n_mfcc_steps + 1) // 4`, which
equals `n_samples // 640` except when the sample count is within 80 samples below a multiple of 640 (then
one more frame is used); pass `n_audio_samples` (or use `lse_for_clip_wav`) for the exact reference count.
Where `n_audio_samples` promises more audio than the MFCC holds, the windows are trimmed to those with a
full 20-step MFCC window; `LSEResult.n_windows` < `n_frames_used - 5` records such a trim. A clip without
any window (fewer than 6 frames with audio) gives a result with a `skipped` reason instead of the
reference's crash.

The core takes tensors: (T, 3, 224, 224) or (T, 224, 224, 3) face crops (uint8 or float 0-255, BGR as the
reference reads them with OpenCV; pass `channel_order="rgb"` for RGB crops) and a (13, Ta) MFCC. The model
runs on its own device, batch by batch; frames may stay on the CPU. On CUDA, PyTorch lets cuDNN run float32
convolutions in TF32 by default, which moves the scores by about 1e-3; turn that off
(`torch.backends.cudnn.allow_tf32 = False`) for full float32 numerics.

Speed. The lip tower runs in the channels_last_3d memory layout (`prepare_syncnet` converts its weights once;
`embed_windows` copies each batch of windows into that layout, where a window of (T, H, W, 3) frames is one
contiguous block): on the 2-core CPU here 1.1x to 1.3x faster than the reference's contiguous batches
(benchmarks/lse.py), embeddings equal to 5e-6 and scores to 1e-5. `precision="bf16"` (opt-in,
`tfbench.metrics.precision`) runs both towers in bfloat16 autocast; the result records its precision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from tfbench.errors import TfbenchError
from tfbench.metrics.precision import Precision, check_precision, forward_precision
from tfbench.models.syncnet_python import SyncNetS

__all__ = [
    "LSE_PROTOCOL",
    "LSE_PROTOCOL_VERSION",
    "LSEResult",
    "WindowPlan",
    "embed_windows",
    "framewise_confidence",
    "lse_for_clip",
    "lse_for_clip_wav",
    "lse_from_embeddings",
    "lse_windows",
    "plan_windows",
    "prepare_syncnet",
    "sync_curve",
]

LSE_PROTOCOL = "tfbench"
"""Name of the protocol these scores are computed under (DESIGN.md section 4, "LSE protocols")."""
LSE_PROTOCOL_VERSION = "1"
"""Bumped whenever a change could move an LSE number; stored with every result."""

VSHIFT = 15
"""syncnet_python's default offset search range (run_syncnet.py `--vshift`): offsets -15..+15 frames."""
DEFAULT_BATCH_SIZE = 20
"""syncnet_python's default `--batch_size` (windows per forward pass)."""
FRAMES_PER_WINDOW = 5
MFCC_STEPS_PER_FRAME = 4
MFCC_WINDOW = 20
SAMPLES_PER_FRAME = 640  # 16 kHz / 25 fps
CROP_SIZE = 224
MEDFILT_KERNEL = 9
PAIRWISE_EPS = 1e-6  # torch.nn.functional.pairwise_distance's default eps

ChannelOrder = Literal["bgr", "rgb"]


@dataclass(frozen=True)
class WindowPlan:
    """How many frames and windows of a clip the reference algorithm scores, and why."""

    n_frames: int  # video frames given
    n_audio_frames: int  # the audio's length in video frames
    n_frames_used: int  # min of the two: the reference's `min_length`
    n_windows: int  # windows scored: n_frames_used - 5, fewer where the MFCC runs short
    skipped: str | None  # why the clip gets no score, or None


@dataclass(frozen=True)
class LSEResult:
    """The sync scores of one clip, with what they were computed from.

    `curve` holds the 2 * vshift + 1 mean distances (offset +vshift first, i.e. index j is offset
    vshift - j); `framewise_conf` the median-filtered per-window confidence. A skipped clip has NaN
    scores, `offset` None, empty tuples and a `skipped` reason.
    """

    min_dist: float
    conf: float
    offset: int | None
    curve: tuple[float, ...]
    framewise_conf: tuple[float, ...]
    n_windows: int
    n_frames: int
    n_frames_used: int
    skipped: str | None = None
    protocol: str = LSE_PROTOCOL
    protocol_version: str = LSE_PROTOCOL_VERSION
    precision: Precision = "fp32"

    @classmethod
    def skip(cls, plan: WindowPlan, precision: Precision = "fp32") -> LSEResult:
        """The result of a clip that `plan` says cannot be scored."""
        nan = float("nan")
        return cls(
            nan, nan, None, (), (), 0, plan.n_frames, plan.n_frames_used, plan.skipped, precision=precision
        )

    def as_dict(self) -> dict[str, Any]:
        """A plain dict for a results row (tuples become lists)."""
        row = asdict(self)
        row["curve"], row["framewise_conf"] = list(self.curve), list(self.framewise_conf)
        return row


def plan_windows(n_frames: int, n_mfcc_steps: int, n_audio_samples: int | None = None) -> WindowPlan:
    """The frames and windows the reference scores for a clip of these lengths (see the module docstring)."""
    if n_audio_samples is not None:
        n_audio_frames = n_audio_samples // SAMPLES_PER_FRAME
    else:
        n_audio_frames = (n_mfcc_steps + 1) // MFCC_STEPS_PER_FRAME
    used = max(0, min(n_frames, n_audio_frames))
    full_audio = (
        (n_mfcc_steps - MFCC_WINDOW) // MFCC_STEPS_PER_FRAME + 1 if n_mfcc_steps >= MFCC_WINDOW else 0
    )
    n_windows = max(0, min(used - FRAMES_PER_WINDOW, full_audio))
    skipped = None
    if n_windows == 0:
        skipped = (
            f"no 5-frame window: {n_frames} video frames, {n_audio_frames} frames of audio "
            f"({n_mfcc_steps} MFCC steps); at least 6 of each are needed"
        )
    return WindowPlan(n_frames, n_audio_frames, used, n_windows, skipped)


def _frames_cthw(frames: Tensor, channel_order: ChannelOrder) -> Tensor:
    """(T, 3, H, W) or (T, H, W, 3) -> a (3, T, 224, 224) BGR view (a copy only for RGB input, flipped in
    the frames' own memory layout: (T, H, W, 3) frames stay channels-last, which `embed_windows` copies fast).
    """
    if frames.ndim != 4 or (frames.shape[1] != 3 and frames.shape[3] != 3):
        raise TfbenchError(f"frames must be (T, 3, 224, 224) or (T, 224, 224, 3), got {tuple(frames.shape)}")
    channel_axis = 1 if frames.shape[1] == 3 else 3
    size = tuple(frames.shape[2:]) if channel_axis == 1 else tuple(frames.shape[1:3])
    if size != (CROP_SIZE, CROP_SIZE):
        raise TfbenchError(f"SyncNet needs 224x224 face crops, got {size} frames")
    if channel_order == "rgb":
        frames = frames.flip(channel_axis)
    elif channel_order != "bgr":
        raise TfbenchError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
    return frames.permute(1, 0, 2, 3) if channel_axis == 1 else frames.permute(3, 0, 1, 2)


def _check_mfcc(mfcc: Tensor) -> Tensor:
    if mfcc.ndim != 2 or mfcc.shape[0] != 13:
        raise TfbenchError(f"mfcc must be (13, T) python_speech_features MFCC, got {tuple(mfcc.shape)}")
    return mfcc


def lse_windows(
    frames: Tensor,
    mfcc: Tensor,
    n_windows: int | None = None,
    channel_order: ChannelOrder = "bgr",
) -> tuple[Tensor, Tensor]:
    """The reference's model inputs, as strided views (no copy of the clip).

    Args:
        frames: (T, 3, 224, 224) or (T, 224, 224, 3) face crops, uint8 or float 0-255.
        mfcc: (13, Ta) MFCC (100 steps per second).
        n_windows: how many windows to take; default `plan_windows(T, Ta).n_windows`.
        channel_order: "bgr" (the reference's order) or "rgb" (flipped here).

    Returns:
        video windows (N, 3, 5, 224, 224) with window v = frames[v : v + 5], in the frames' dtype, and
        audio windows (N, 1, 13, 20) with window v = mfcc[:, 4v : 4v + 20].
    """
    cthw = _frames_cthw(frames, channel_order)
    mfcc = _check_mfcc(torch.as_tensor(mfcc))
    if n_windows is None:
        n_windows = plan_windows(cthw.shape[1], mfcc.shape[1]).n_windows
    if n_windows < 0 or n_windows + FRAMES_PER_WINDOW - 1 > cthw.shape[1]:
        raise TfbenchError(f"{n_windows} windows need {n_windows + 4} frames, got {cthw.shape[1]}")
    if n_windows > 0 and MFCC_STEPS_PER_FRAME * (n_windows - 1) + MFCC_WINDOW > mfcc.shape[1]:
        raise TfbenchError(
            f"{n_windows} windows need {4 * (n_windows - 1) + 20} MFCC steps, got {mfcc.shape[1]}"
        )
    if n_windows == 0:
        empty_video = cthw.new_zeros((0, 3, FRAMES_PER_WINDOW, CROP_SIZE, CROP_SIZE))
        return empty_video, mfcc.new_zeros((0, 1, 13, MFCC_WINDOW))
    # unfold appends the window axis last: (3, N', H, W, 5) -> (N', 3, 5, H, W)
    video = cthw.unfold(1, FRAMES_PER_WINDOW, 1).permute(1, 0, 4, 2, 3)[:n_windows]
    audio = mfcc.unfold(1, MFCC_WINDOW, MFCC_STEPS_PER_FRAME).permute(1, 0, 2)[:n_windows, None]
    return video, audio


def prepare_syncnet(model: SyncNetS) -> SyncNetS:
    """`model` in eval mode with its lip tower's weights in channels_last_3d (in place; values unchanged),
    the layout `embed_windows` feeds it: see the module docstring. Returns the same model."""
    model.netcnnlip.to(memory_format=torch.channels_last_3d)
    return model.eval()


def embed_windows(
    model: SyncNetS,
    video: Tensor,
    audio: Tensor,
    batch_size: int = DEFAULT_BATCH_SIZE,
    precision: Precision = "fp32",
) -> tuple[Tensor, Tensor]:
    """(N, D) float32 video and audio embeddings, `batch_size` windows per forward pass, on the model's
    device.

    Each batch is copied to the device as float32 only when it is run, so a long clip never sits there
    whole; video batches go into one reused channels_last_3d buffer (the layout `prepare_syncnet`'s weights
    run fastest in; a fresh buffer per batch costs as much again in page faults on CPU). `precision` "bf16"
    runs the forward passes in bfloat16 autocast. The model should be in eval mode (BatchNorm running
    statistics), as the reference sets it.
    """
    if batch_size < 1:
        raise TfbenchError(f"batch_size must be at least 1, got {batch_size}")
    device = next(model.parameters()).device
    video_out, audio_out = [], []
    shape = (min(batch_size, video.shape[0]), *video.shape[1:])
    buffer = torch.empty(shape, dtype=torch.float32, device=device, memory_format=torch.channels_last_3d)
    with torch.inference_mode(), forward_precision(device, check_precision(precision, "LSE")):
        for start in range(0, video.shape[0], batch_size):
            stop = start + batch_size
            video_batch = buffer[: min(batch_size, video.shape[0] - start)].copy_(video[start:stop])
            audio_batch = audio[start:stop].to(device, torch.float32, memory_format=torch.contiguous_format)
            video_out.append(model.forward_video(video_batch).float())
            audio_out.append(model.forward_audio(audio_batch).float())
    if not video_out:
        raise TfbenchError("no windows to embed")
    return torch.cat(video_out), torch.cat(audio_out)


def sync_curve(
    video_emb: Tensor, audio_emb: Tensor, vshift: int = VSHIFT, chunk_size: int = 256
) -> tuple[Tensor, Tensor]:
    """The mean-distance curve over offsets and the per-window distances (reference `calc_pdist`).

    `dists[i, j] = ||video_emb[i] - padded[i + j] + 1e-6||_2` where `padded` is `audio_emb` with `vshift`
    zero rows added at both ends; `curve = dists.mean(0)`. All windows x offsets are computed as one strided
    tensor expression, `chunk_size` windows at a time to bound memory (chunk x offsets x D floats).

    Returns:
        curve (2 * vshift + 1,) and dists (N, 2 * vshift + 1), float32 on the embeddings' device.
    """
    if video_emb.ndim != 2 or video_emb.shape != audio_emb.shape or video_emb.shape[0] == 0:
        raise TfbenchError(
            f"embeddings must be two equal non-empty (N, D) matrices, got {tuple(video_emb.shape)} "
            f"and {tuple(audio_emb.shape)}"
        )
    width = 2 * vshift + 1
    padded = F.pad(audio_emb, (0, 0, vshift, vshift))  # (N + 2 vshift, D), zero rows
    shifted = padded.unfold(0, width, 1).transpose(1, 2)  # (N, width, D): row i holds padded[i : i + width]
    dists = torch.cat(
        [
            torch.linalg.vector_norm(
                video_emb[start : start + chunk_size, None, :]
                - shifted[start : start + chunk_size]
                + PAIRWISE_EPS,
                dim=-1,
            )
            for start in range(0, video_emb.shape[0], chunk_size)
        ]
    )
    return dists.mean(0), dists


def framewise_confidence(curve: Tensor, dists: Tensor, kernel_size: int = MEDFILT_KERNEL) -> Tensor:
    """Per-window confidence `median(curve) - dists[:, argmin(curve)]`, median-filtered like scipy's medfilt.

    The filter zero-pads `kernel_size // 2` values at both ends (scipy.signal.medfilt's behaviour).
    """
    best = torch.min(curve, 0).indices
    fconf = torch.median(curve) - dists[:, best]
    half = kernel_size // 2
    return F.pad(fconf, (half, half)).unfold(0, kernel_size, 1).median(dim=1).values


def lse_from_embeddings(
    video_emb: Tensor,
    audio_emb: Tensor,
    plan: WindowPlan | None = None,
    vshift: int = VSHIFT,
    precision: Precision = "fp32",
) -> LSEResult:
    """The full per-clip result from the (N, D) embeddings of its windows (made in `precision`)."""
    curve, dists = sync_curve(video_emb, audio_emb, vshift)
    min_val, min_idx = torch.min(curve, 0)
    conf = torch.median(curve) - min_val
    fconf = framewise_confidence(curve, dists)
    n = video_emb.shape[0]
    n_frames = plan.n_frames if plan else n + FRAMES_PER_WINDOW
    n_used = plan.n_frames_used if plan else n + FRAMES_PER_WINDOW
    return LSEResult(
        min_dist=float(min_val),
        conf=float(conf),
        offset=vshift - int(min_idx),
        curve=tuple(curve.cpu().tolist()),
        framewise_conf=tuple(fconf.cpu().tolist()),
        n_windows=n,
        n_frames=n_frames,
        n_frames_used=n_used,
        precision=precision,
    )


def lse_for_clip(
    model: SyncNetS,
    frames: Tensor,
    mfcc: Tensor,
    n_audio_samples: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    vshift: int = VSHIFT,
    channel_order: ChannelOrder = "bgr",
    precision: Precision = "fp32",
) -> LSEResult:
    """LSE-D (`min_dist`), LSE-C (`conf`) and the AV offset of one clip, as syncnet_python computes them.

    Args:
        model: `SyncNetS` in eval mode (e.g. from `load_syncnet_v2`); it runs on its own device.
        frames: (T, 3, 224, 224) or (T, 224, 224, 3) face crops, uint8 or float 0-255, on any device.
        mfcc: (13, Ta) python_speech_features MFCC of the 16 kHz int16 audio (`tfbench.audio.syncnet_mfcc`).
        n_audio_samples: the 16 kHz sample count the MFCC came from, for the reference's exact frame count;
            without it the count is derived from the MFCC length (see the module docstring).
        batch_size: windows per forward pass (the reference's default is 20).
        vshift: offsets searched are -vshift..+vshift frames.
        channel_order: "bgr" as the reference, or "rgb".
        precision: "fp32" (the reference's numerics) or "bf16" (faster where supported; recorded).

    Returns:
        An `LSEResult`; a clip with fewer than 6 frames of video or audio is skipped with a reason.

    Raises:
        TfbenchError: frames or MFCC of the wrong shape, an unknown precision.
    """
    mfcc = _check_mfcc(torch.as_tensor(mfcc))
    cthw = _frames_cthw(frames, channel_order)  # validates before anything runs
    precision = check_precision(precision, "LSE")
    plan = plan_windows(cthw.shape[1], mfcc.shape[1], n_audio_samples)
    if plan.skipped:
        return LSEResult.skip(plan, precision)
    video, audio = lse_windows(frames, mfcc, plan.n_windows, channel_order)
    with torch.inference_mode():
        video_emb, audio_emb = embed_windows(model, video, audio, batch_size, precision)
        return lse_from_embeddings(video_emb, audio_emb, plan, vshift, precision)


def lse_for_clip_wav(
    model: SyncNetS,
    frames: Tensor,
    wav: Tensor | np.ndarray,
    sample_rate: int = 16000,
    batch_size: int = DEFAULT_BATCH_SIZE,
    vshift: int = VSHIFT,
    channel_order: ChannelOrder = "bgr",
    precision: Precision = "fp32",
) -> LSEResult:
    """`lse_for_clip` from a mono waveform (int16, or float in [-1, 1]), frame count as the reference's.

    The MFCC comes from `tfbench.audio.syncnet_mfcc` (python_speech_features numerics); other sample rates
    are resampled to 16 kHz first.
    """
    from tfbench import audio as tf_audio  # foundation module; imported here: the core takes tensors only

    if sample_rate != tf_audio.SAMPLE_RATE:
        wav = tf_audio.resample(wav, sample_rate, tf_audio.SAMPLE_RATE)
    mfcc = torch.as_tensor(tf_audio.syncnet_mfcc(wav))
    n_samples = int(wav.shape[-1])
    return lse_for_clip(model, frames, mfcc, n_samples, batch_size, vshift, channel_order, precision)
