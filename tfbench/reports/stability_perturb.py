"""Slight perturbations of ground-truth clips, for the metric reliability view of `tfbench stability`.

A sync score worth trusting should barely move when an in-sync clip is changed in ways that leave its sync
intact. Each perturbation maps the decoded frames (T, H, W, 3) uint8 RGB and the crop windows of each crop
size ({size: (T, 4) y1, y2, x1, x2 in frame pixels}, as the face pipeline cut them) to perturbed ones; the
crops are then cut again with `apply_plan`, so detection is not rerun and only the perturbation differs:

- `jitter`: every frame's crop window moves by its own random whole-pixel offset of at most
  `JITTER_PIXELS` in x and in y (the same offset for every crop size of that frame);
- `jpeg`: every frame encoded as a JPEG at quality `JPEG_QUALITY` (libjpeg through Pillow) and decoded;
- `brightness`: every pixel value multiplied by `BRIGHTNESS_GAIN`, rounded and clipped to 0..255;
- `h264`: the clip re-encoded as H.264 (libx264, yuv420p) at CRF `H264_CRF` (ffmpeg's default) and decoded,
  the generation loss of one more upload; an odd frame side is padded by edge copies for yuv420p and cropped
  back after decoding.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image

from tfbench.media import read_video, write_video
from tfbench.registry import Registry

__all__ = ["BRIGHTNESS_GAIN", "H264_CRF", "JITTER_PIXELS", "JPEG_QUALITY", "PERTURBATIONS", "Perturbation"]

JITTER_PIXELS = 3
JPEG_QUALITY = 75
BRIGHTNESS_GAIN = 1.1
H264_CRF = 23

Windows = dict[int, np.ndarray]


@dataclass(frozen=True)
class Perturbation:
    """A named change of a clip: `apply(frames, windows, rng)` -> (frames, windows), inputs left unchanged."""

    description: str
    apply: Callable[[np.ndarray, Mapping[int, np.ndarray], np.random.Generator], tuple[np.ndarray, Windows]]


PERTURBATIONS: Registry[Perturbation] = Registry("perturbation")


def _jitter(
    frames: np.ndarray, windows: Mapping[int, np.ndarray], rng: np.random.Generator
) -> tuple[np.ndarray, Windows]:
    shift = rng.integers(-JITTER_PIXELS, JITTER_PIXELS + 1, size=(len(frames), 2))  # (dy, dx) per frame
    offsets = np.stack([shift[:, 0], shift[:, 0], shift[:, 1], shift[:, 1]], axis=1)
    return frames, {size: w + offsets[: len(w)].astype(w.dtype) for size, w in windows.items()}


def _jpeg_frame(frame: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def _jpeg(
    frames: np.ndarray, windows: Mapping[int, np.ndarray], rng: np.random.Generator
) -> tuple[np.ndarray, Windows]:
    return np.stack([_jpeg_frame(frame) for frame in frames]), dict(windows)


def _brightness(
    frames: np.ndarray, windows: Mapping[int, np.ndarray], rng: np.random.Generator
) -> tuple[np.ndarray, Windows]:
    table = np.clip(np.rint(np.arange(256) * BRIGHTNESS_GAIN), 0, 255).astype(np.uint8)  # per value
    return table[frames], dict(windows)


def _h264(
    frames: np.ndarray, windows: Mapping[int, np.ndarray], rng: np.random.Generator
) -> tuple[np.ndarray, Windows]:
    height, width = frames.shape[1:3]
    even = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    with tempfile.TemporaryDirectory(prefix="tfbench-h264-") as folder:
        path = write_video(f"{folder}/clip.mp4", even, fps=25.0, crf=H264_CRF)
        decoded = read_video(path, fps=None, audio=False).frames
    return np.ascontiguousarray(decoded[: len(frames), :height, :width]), dict(windows)


PERTURBATIONS.add("jitter", Perturbation(f"crop window moved by up to {JITTER_PIXELS} px per frame", _jitter))
PERTURBATIONS.add("jpeg", Perturbation(f"JPEG re-encoding at quality {JPEG_QUALITY}", _jpeg))
PERTURBATIONS.add("brightness", Perturbation(f"brightness x{BRIGHTNESS_GAIN:g}", _brightness))
PERTURBATIONS.add("h264", Perturbation(f"H.264 re-encoding at CRF {H264_CRF}", _h264))
