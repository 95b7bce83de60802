"""Face detectors behind one interface, in the `DETECTORS` registry: s3fd, s3fd_fan, dlib and none.

A detector maps a batch of frames, (B, H, W, 3) uint8 RGB, to one (N_i, 5) float32 array per frame,
[x1, y1, x2, y2, score] in frame pixels (x2/y2 exclusive), best first. Each class is built from plain
keyword arguments (`DetectorOptions`), loads its model once, and names the weights entry it loads
(`weights_entry`), so a cache can key its results on that file's hash.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from tfbench.data.faces_crop import rescale_uint8
from tfbench.errors import TfbenchError
from tfbench.registry import Registry


@dataclass(frozen=True)
class DetectorOptions:
    """What every detector may read. `scale` resizes frames before detection (syncnet_python: 0.25);
    `confidence` is the score threshold (None for either: the detector's own default); `upsample` is
    dlib's pyramid upsampling count; `box` is the fixed (x1, y1, x2, y2) of the `none` detector (None: the
    whole frame); `weights` maps weights entry names to files (`--weights NAME=PATH`); `device` is a torch
    device string."""

    scale: float | None = None
    confidence: float | None = None
    upsample: int = 0
    box: tuple[int, int, int, int] | None = None
    weights: dict[str, Path] | None = None
    device: str = "cpu"


class FaceDetector(ABC):
    """Finds faces in frames. Subclasses set `name` and implement `detect`."""

    name: ClassVar[str]
    weights_entry: ClassVar[str | None] = None
    default_scale: ClassVar[float] = 1.0
    default_confidence: ClassVar[float] = 0.0

    def __init__(self, options: DetectorOptions) -> None:
        self.options = options
        self.scale = self.default_scale if options.scale is None else options.scale
        self.confidence = self.default_confidence if options.confidence is None else options.confidence

    @abstractmethod
    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        """(B, H, W, 3) uint8 RGB -> B arrays of shape (N_i, 5): x1, y1, x2, y2, score; best first."""


DETECTORS: Registry[type[FaceDetector]] = Registry("face detector", entry_point_group="tfbench.detectors")


def check_frames(frames: np.ndarray) -> np.ndarray:
    """Frames as a (B, H, W, 3) uint8 array; anything else is a TfbenchError naming the shape."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise TfbenchError(
            f"face detection needs (B, H, W, 3) uint8 RGB frames, got {frames.dtype} {frames.shape}"
        )
    return frames


@DETECTORS.register("s3fd")
class S3FDDetector(FaceDetector):
    """S3FD with syncnet_python's weights (`sfd_face.pth`); `scale` 0.25 and `confidence` 0.9 reproduce
    its pipeline. The network is batched; frames of one call share their size."""

    name = "s3fd"
    weights_entry: ClassVar[str | None] = "s3fd"
    default_scale = 0.25
    default_confidence = 0.9

    def __init__(self, options: DetectorOptions) -> None:
        super().__init__(options)
        from tfbench import weights
        from tfbench.data.s3fd import load_s3fd

        assert self.weights_entry is not None
        self.path = weights.resolve(self.weights_entry, options.weights)
        self.net = load_s3fd(self.path, options.device)

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        from tfbench.data.s3fd import detect_s3fd

        return detect_s3fd(self.net, check_frames(frames), self.scale, self.confidence)


@DETECTORS.register("s3fd_fan")
class S3FDFanDetector(S3FDDetector):
    """S3FD with face_alignment's weights (`s3fd-619a316812.pth`), the detector Wav2Lip runs at full
    resolution with confidence 0.5 (it then keeps the best box per frame)."""

    name = "s3fd_fan"
    weights_entry = "s3fd_fan"
    default_scale = 1.0
    default_confidence = 0.5


@DETECTORS.register("dlib")
class DlibDetector(FaceDetector):
    """dlib's HOG + linear SVM frontal face detector: offline (no weights file), CPU only.

    `confidence` is passed as dlib's `adjust_threshold` (0 = dlib's default; negative finds more faces);
    `upsample` doubles the frame that many times first (finds faces under ~80 px, 4x slower each).
    dlib's rectangles are inclusive, so x2/y2 are right()+1 / bottom()+1. With `scale` != 1 the frames are
    resized bilinearly first and the boxes mapped back to frame pixels.
    """

    name = "dlib"

    def __init__(self, options: DetectorOptions) -> None:
        super().__init__(options)
        import dlib

        self._detector = dlib.get_frontal_face_detector()

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        frames = check_frames(frames)
        height, width = frames.shape[1:3]
        if self.scale != 1.0:
            frames = np.stack([rescale_uint8(frame, self.scale) for frame in frames])
        to_frame = np.array([width / frames.shape[2], height / frames.shape[1]] * 2, np.float32)
        out = []
        for frame in frames:
            rects, scores, _ = self._detector.run(
                np.ascontiguousarray(frame), self.options.upsample, self.confidence
            )
            boxes = np.array(
                [
                    [r.left(), r.top(), r.right() + 1, r.bottom() + 1, s]
                    for r, s in zip(rects, scores, strict=True)
                ],
                dtype=np.float32,
            ).reshape(-1, 5)
            boxes[:, :4] *= to_frame
            out.append(boxes[np.argsort(-boxes[:, 4], kind="stable")])
        return out


@DETECTORS.register("none")
class NoDetector(FaceDetector):
    """No detection, for pre-cropped datasets (the LRS2 release): every frame's face is the whole frame,
    or the fixed `box` (x1, y1, x2, y2) the user gives, with score 1."""

    name = "none"

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        frames = check_frames(frames)
        height, width = frames.shape[1:3]
        box = self.options.box or (0, 0, width, height)
        x1, y1, x2, y2 = box
        if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
            raise TfbenchError(f"fixed face box {box} does not lie inside the {width}x{height} frame")
        return [np.array([[x1, y1, x2, y2, 1.0]], np.float32) for _ in range(len(frames))]


def create_detector(name: str, options: DetectorOptions | None = None) -> FaceDetector:
    """Build the detector registered as `name` (did-you-mean error for an unknown name)."""
    return DETECTORS.get(name)(options or DetectorOptions())
