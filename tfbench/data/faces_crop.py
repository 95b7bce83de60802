"""Crop rules: which window of each frame becomes the face crop, and pasting a generated crop back.

- `plan_syncnet_224` is syncnet_python's `crop_video`: half-size bs = max(w, h) / 2 and the box centre,
  each median-filtered over `kernel` (13) frames (scipy's medfilt, zero-padded at the ends as in the
  reference); the frame is padded by bsi = int(bs * (1 + 2 cs)) with the value 110; rows
  [int(my - bs), int(my + bs (1 + 2 cs))) and columns [int(mx - bs (1 + cs)), int(mx + bs (1 + cs))) of the
  padded frame (my, mx = centre + bsi; cs = crop_scale 0.4), resized to 224 x 224.
- `plan_wav2lip_96` is Wav2Lip's `face_detect` + `datagen`: the box truncated to int and clipped at 0,
  padded by (top 0, bottom 10, left 0, right 0) and clipped to the frame, then smoothed in place by the mean
  over the next 5 boxes (the last 5 at the end), truncated to int; the window is resized to 96 x 96.
- `paste_back` is Wav2Lip's paste: a generated crop resized to its window and written into the frame.

Windows are (y1, y2, x1, x2) in frame pixels, end-exclusive; a 224 window may reach outside the frame
(filled with `pad_value`), clipped where the reference's slice of the padded frame would be clipped.
Resizing reproduces cv2.resize's INTER_LINEAR (the default both references use) in integer arithmetic,
bit-exact on x86 (see `resize_uint8`); no antialiasing, as in the references.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.signal import medfilt


@dataclass(frozen=True)
class CropPlan:
    """Per track frame: the window cut from the frame and where the tracked face box lands in the crop.

    `windows` (T, 4) int64 y1, y2, x1, x2; `face_boxes` (T, 4) float32 x1, y1, x2, y2 in crop pixels (the
    box landmark prediction starts from); `size` the square output side; `pad_value` the fill outside
    the frame.
    """

    windows: np.ndarray
    face_boxes: np.ndarray
    size: int
    pad_value: int = 0


def _face_in_crop(boxes: np.ndarray, windows: np.ndarray, size: int) -> np.ndarray:
    """Map frame-pixel boxes (x1, y1, x2, y2) into the resized crop of each window."""
    y1, y2, x1, x2 = (windows[:, k].astype(np.float64) for k in range(4))
    sx, sy = size / (x2 - x1), size / (y2 - y1)
    mapped = np.stack(
        [(boxes[:, 0] - x1) * sx, (boxes[:, 1] - y1) * sy, (boxes[:, 2] - x1) * sx, (boxes[:, 3] - y1) * sy],
        axis=1,
    )
    return mapped.astype(np.float32)


def syncnet_smoothed(boxes: np.ndarray, kernel: int = 13) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half-size, centre y and centre x of each box, median-filtered over `kernel` frames (zero padding)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    half = np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2
    cy, cx = (boxes[:, 1] + boxes[:, 3]) / 2, (boxes[:, 0] + boxes[:, 2]) / 2
    if kernel <= 1:
        return half, cy, cx
    with warnings.catch_warnings():  # a track shorter than the kernel is zero-padded, as in the reference
        warnings.simplefilter("ignore")
        return medfilt(half, kernel), medfilt(cy, kernel), medfilt(cx, kernel)


def plan_syncnet_224(
    boxes: np.ndarray,
    frame_hw: tuple[int, int],
    crop_scale: float = 0.4,
    kernel: int = 13,
    size: int = 224,
    pad_value: int = 110,
) -> CropPlan:
    """syncnet_python's crop windows for a track's boxes (T, 4) in frames of size `frame_hw`."""
    height, width = frame_hw
    cs = crop_scale
    half, cy, cx = syncnet_smoothed(boxes, kernel)
    windows = np.zeros((len(half), 4), dtype=np.int64)
    for i, (bs, y, x) in enumerate(zip(half, cy, cx, strict=True)):
        bsi = int(bs * (1 + 2 * cs))
        my, mx = y + bsi, x + bsi  # centre in the padded frame
        rows = (int(my - bs), int(my + bs * (1 + 2 * cs)))
        cols = (int(mx - bs * (1 + cs)), int(mx + bs * (1 + cs)))
        # a slice of the padded frame ends at its border; a negative start is clipped (the reference wraps)
        r0, r1 = max(rows[0], 0), min(rows[1], height + 2 * bsi)
        c0, c1 = max(cols[0], 0), min(cols[1], width + 2 * bsi)
        windows[i] = (r0 - bsi, max(r1, r0 + 1) - bsi, c0 - bsi, max(c1, c0 + 1) - bsi)
    return CropPlan(windows, _face_in_crop(np.asarray(boxes, np.float64), windows, size), size, pad_value)


def wav2lip_windows(
    boxes: np.ndarray,
    frame_hw: tuple[int, int],
    pads: tuple[int, int, int, int] = (0, 10, 0, 0),
    window: int = 5,
) -> np.ndarray:
    """Wav2Lip's padded, clipped and smoothed integer windows (T, 4) y1, y2, x1, x2 (see module docstring).

    Wav2Lip truncates the detector's box to int after clipping at 0, pads it, smooths the int boxes in
    place (the tail windows therefore see already-smoothed boxes) and truncates each mean back to int.
    A track shorter than `window` is averaged over all its boxes (Wav2Lip would slice oddly there).
    """
    height, width = frame_hw
    top, bottom, left, right = pads
    rect = np.clip(np.asarray(boxes, dtype=np.float64), 0, None).astype(np.int64)
    padded = np.stack(
        [
            np.maximum(0, rect[:, 0] - left),
            np.maximum(0, rect[:, 1] - top),
            np.minimum(width, rect[:, 2] + right),
            np.minimum(height, rect[:, 3] + bottom),
        ],
        axis=1,
    )
    n = len(padded)
    for i in range(n):
        span = padded[max(0, n - window) :] if i + window > n else padded[i : i + window]
        padded[i] = np.mean(span, axis=0)  # assignment into int64 truncates, as in the reference
    x1, y1, x2, y2 = padded.T
    return np.stack([y1, y2, x1, x2], axis=1)


def plan_wav2lip_96(
    boxes: np.ndarray,
    frame_hw: tuple[int, int],
    pads: tuple[int, int, int, int] = (0, 10, 0, 0),
    window: int = 5,
    size: int = 96,
) -> CropPlan | str:
    """Wav2Lip's crop windows for a track's boxes, or a skip reason if a window is empty (face outside)."""
    windows = wav2lip_windows(boxes, frame_hw, pads, window)
    empty = np.flatnonzero((windows[:, 1] <= windows[:, 0]) | (windows[:, 3] <= windows[:, 2]))
    if len(empty):
        return f"face box lies outside the frame in {len(empty)} frame(s) (first: track frame {empty[0]})"
    return CropPlan(windows, _face_in_crop(np.asarray(boxes, np.float64), windows, size), size)


def cut(frame: np.ndarray, window: np.ndarray | tuple[int, int, int, int], pad_value: int = 0) -> np.ndarray:
    """The window (y1, y2, x1, x2) of an (H, W, 3) frame; parts outside the frame are `pad_value`."""
    y1, y2, x1, x2 = (int(v) for v in window)
    height, width = frame.shape[:2]
    sy1, sy2, sx1, sx2 = max(y1, 0), min(y2, height), max(x1, 0), min(x2, width)
    if (y1, x1, y2, x2) == (sy1, sx1, sy2, sx2):
        return frame[y1:y2, x1:x2]
    out = np.full((y2 - y1, x2 - x1, frame.shape[2]), pad_value, dtype=frame.dtype)
    if sy2 > sy1 and sx2 > sx1:
        out[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = frame[sy1:sy2, sx1:sx2]
    return out


_COEF_BITS = 11  # cv2's INTER_RESIZE_COEF_BITS: weights are integers out of 2048


def _taps(
    n_in: int, n_out: int, clamp_weights: bool, step: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and 11-bit integer weights of bilinear resampling along one axis, as cv2 computes
    them: output i samples float32 position (i + 0.5) * step - 0.5, step = n_in / n_out unless given.
    Horizontally a position outside [0, n_in - 1] takes the edge pixel with weight 1 (`clamp_weights`);
    vertically the weights are kept and only the row indices are clamped (both rows the edge row)."""
    step = n_in / n_out if step is None else step
    position = ((np.arange(n_out) + 0.5) * step - 0.5).astype(np.float32)
    lower = np.floor(position).astype(np.int64)
    fraction = (position - lower).astype(np.float32)
    if clamp_weights:
        outside = (lower < 0) | (lower >= n_in - 1)
        fraction[outside] = 0
        lower = np.clip(lower, 0, n_in - 1)
    scale = np.float32(1 << _COEF_BITS)
    w1 = np.rint(fraction * scale).astype(np.int32)
    w0 = np.rint((np.float32(1) - fraction) * scale).astype(np.int32)
    return np.clip(lower, 0, n_in - 1), np.clip(lower + 1, 0, n_in - 1), w0, w1


def resize_uint8(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w, C) uint8 -> (height, width, C) uint8 with cv2.resize's INTER_LINEAR arithmetic.

    Half-pixel centres, no antialiasing, 11-bit integer weights, a horizontal pass in integers, then the
    vertical pass and rounding done the way cv2's vectorised uint8 path does them. Measured bit-exact
    against opencv-python-headless 5.0 (x86) on random and photographic images, up- and downscaling;
    float bilinear (torch's F.interpolate) differs from it by one grey level on about 12% of pixels.
    """
    return _resize(image, height, width, None)


def rescale_uint8(image: np.ndarray, scale: float) -> np.ndarray:
    """`cv2.resize(image, (0, 0), fx=scale, fy=scale)`: the size rounded half to even, as cv2 rounds it,
    and the sampling step 1 / scale (not in/out size, which differs when the size was rounded)."""
    height, width = (max(1, round(n * scale)) for n in image.shape[:2])
    return _resize(image, height, width, 1.0 / scale)


def _resize(image: np.ndarray, height: int, width: int, step: float | None) -> np.ndarray:
    if image.shape[:2] == (height, width) and step in (None, 1.0):
        return np.ascontiguousarray(image)
    steps = (image.shape[0] / height, image.shape[1] / width) if step is None else (step, step)
    if steps == (2.0, 2.0):  # cv2 switches INTER_LINEAR to INTER_AREA for an exact halving
        return _halve(image, height, width)
    y0, y1, b0, b1 = _taps(image.shape[0], height, clamp_weights=False, step=step)
    x0, x1, a0, a1 = _taps(image.shape[1], width, clamp_weights=True, step=step)
    rows, index = np.unique(np.concatenate([y0, y1]), return_inverse=True)  # only rows the output reads
    source = image[rows].astype(np.int32)
    horizontal = source[:, x0] * a0[None, :, None] + source[:, x1] * a1[None, :, None]
    y0, y1 = index[: len(y0)], index[len(y0) :]
    top = (b0[:, None, None] * (horizontal[y0] >> 4)) >> 16
    bottom = (b1[:, None, None] * (horizontal[y1] >> 4)) >> 16
    return np.clip((top + bottom + 2) >> 2, 0, 255).astype(np.uint8)


def _halve(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """cv2's INTER_AREA for an exact 2x reduction: the rounded mean of each 2 x 2 block (of the part of
    it inside the image, where an odd size leaves a last row or column of one pixel)."""
    rows, cols = min(2 * height, image.shape[0]), min(2 * width, image.shape[1])
    padded = np.zeros((2 * height, 2 * width, image.shape[2]), np.int32)
    padded[:rows, :cols] = image[:rows, :cols]
    sums = padded.reshape(height, 2, width, 2, -1).sum(axis=(1, 3))
    counts = np.zeros((2 * height, 2 * width), np.int32)
    counts[:rows, :cols] = 1
    n = counts.reshape(height, 2, width, 2).sum(axis=(1, 3))[..., None]
    full = (sums + 2) >> 2
    partial = np.rint(sums / np.maximum(n, 1)).astype(np.int32)
    return np.where(n == 4, full, partial).astype(np.uint8)


def apply_plan(frames: np.ndarray, plan: CropPlan) -> np.ndarray:
    """Crops (T, size, size, 3) uint8 of `frames` (T, H, W, 3), the i-th frame cut by the i-th window."""
    out = np.empty((len(plan.windows), plan.size, plan.size, 3), dtype=np.uint8)
    for i, (frame, window) in enumerate(zip(frames, plan.windows, strict=True)):
        out[i] = resize_uint8(cut(frame, window, plan.pad_value), plan.size, plan.size)
    return out


def paste_back(frames: np.ndarray, crops: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Frames with each (generated) crop resized to its window and written in (Wav2Lip's paste-back);
    parts of a window outside the frame are dropped. Returns a new array; `frames` is not modified."""
    out = np.array(frames, copy=True)
    height, width = out.shape[1:3]
    for frame, crop, window in zip(out, crops, windows, strict=True):
        y1, y2, x1, x2 = (int(v) for v in window)
        patch = resize_uint8(crop, y2 - y1, x2 - x1)
        sy1, sy2, sx1, sx2 = max(y1, 0), min(y2, height), max(x1, 0), min(x2, width)
        if sy2 > sy1 and sx2 > sx1:
            frame[sy1:sy2, sx1:sx2] = patch[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1]
    return out
