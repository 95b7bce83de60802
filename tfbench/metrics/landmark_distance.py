"""LMD: the mouth-landmark distance between generated and ground-truth face crops (lower is better).

Per frame, dlib's 68-point predictor (`tfbench.data.landmarks`, the file of face_recognition_models, offline)
places the landmarks on the generated crop and on the ground-truth crop; the frame's LMD is the mean over the
20 mouth points (indices 48-67: outer lip 48-59, inner lip 60-67) of the Euclidean distance between the two
positions, in pixels of the crop. A video's LMD is the mean over its usable frames, the dataset's the mean
over videos (a long video counts as much as a short one), as SSIM and PSNR in `tfbench.metrics.visual`.

Conventions, each a choice a user may need to know:
- Face rectangle: the crops are already face-aligned (the face pipeline cut them around a detected face), so
  the predictor is given the whole crop as the face rectangle, the same for both images, and the two sets of
  landmarks are directly comparable. No per-image box is detected, whose jitter would add to the distance.
- Which frames count: the predictor always returns 68 points, even on an image with no face. So each crop
  is first checked by dlib's HOG face detector (`face_check="hog"`): once at the crop's size with dlib's
  default threshold and, where that finds nothing, once more upsampled 2x with the threshold lowered to
  -0.5 (tight crops and drawn faces often need it; noise and flat images still give nothing). A frame whose
  generated or ground-truth crop has no face is excluded and counted; a video with no usable frame has a
  NaN LMD and a reason. `face_check="none"` scores every frame.
- Precision: dlib gives integer pixel positions, so one point moves in steps of 1 px; the mean over 20
  points and many frames is much finer.
- Units: `units="pixels"` (default, the convention of the published tables) or `"crop"`: divided by the
  crop's side (sqrt(H * W) for a non-square crop), comparable across crop sizes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from tfbench.data.faces_detect import DetectorOptions, FaceDetector, create_detector
from tfbench.data.landmarks import MOUTH, Landmarker
from tfbench.errors import TfbenchError
from tfbench.metrics.visual import VideoMeanMetric, frames_nchw

__all__ = [
    "LMD",
    "FaceCheck",
    "LMDResult",
    "LMDUnits",
    "dlib_images",
    "face_present",
    "lmd_for_clip",
    "lmd_from_landmarks",
    "mouth_landmarks",
]

LMDUnits = Literal["pixels", "crop"]
FaceCheck = Literal["hog", "none"]
N_MOUTH_POINTS = MOUTH.stop - MOUTH.start  # 20
HOG_PASSES = (DetectorOptions(upsample=0, confidence=0.0), DetectorOptions(upsample=1, confidence=-0.5))
"""The face check's two detector passes: the second only for crops the first finds no face in."""


def dlib_images(frames: Tensor | np.ndarray, metric: str) -> np.ndarray:
    """A uint8 RGB clip, (T, H, W, 3) or (T, 3, H, W), tensor or array, as the C-contiguous (T, H, W, 3)
    array dlib reads.

    Raises:
        TfbenchError: naming `metric`, for another dtype or shape.
    """
    tensor = torch.from_numpy(np.asarray(frames)) if isinstance(frames, np.ndarray) else frames
    nchw = frames_nchw(tensor, metric)
    return np.ascontiguousarray(nchw.permute(0, 2, 3, 1).cpu().numpy())


@cache
def _hog_passes() -> tuple[FaceDetector, ...]:
    return tuple(create_detector("dlib", options) for options in HOG_PASSES)


def face_present(images: np.ndarray) -> np.ndarray:
    """(T,) bool: whether dlib's HOG detector finds a face in each (T, H, W, 3) uint8 crop (two passes,
    see the module docstring)."""
    first, second = _hog_passes()
    found = np.array([len(boxes) > 0 for boxes in first.detect(images)], dtype=bool)
    missed = np.flatnonzero(~found)
    if missed.size:
        found[missed] = [len(boxes) > 0 for boxes in second.detect(images[missed])]
    return found


def mouth_landmarks(
    frames: Tensor | np.ndarray, face_check: FaceCheck = "hog", landmarker: Landmarker | None = None
) -> Tensor:
    """(T, 20, 2) float32 (x, y) mouth landmarks of each crop, with the whole crop as the face rectangle;
    rows of NaN for crops where `face_check` finds no face.

    Args:
        frames: uint8 RGB crops, (T, H, W, 3) or (T, 3, H, W), tensor or array.
        face_check: "hog" (dlib's detector must find a face) or "none" (every crop is a face).
        landmarker: a `Landmarker` (default: dlib's 68-point model, loaded once per process).
    """
    if face_check not in ("hog", "none"):
        raise TfbenchError(f"LMD: face_check must be 'hog' or 'none', got {face_check!r}")
    images = dlib_images(frames, "LMD")
    landmarker = landmarker or Landmarker()
    height, width = images.shape[1:3]
    present = face_present(images) if face_check == "hog" else np.ones(len(images), dtype=bool)
    out = np.full((len(images), N_MOUTH_POINTS, 2), np.nan, dtype=np.float32)
    if present.any():
        # dlib has no batched shape predictor: one call per crop (about a millisecond each)
        boxes = np.tile(np.array([0, 0, width, height], dtype=np.float32), (int(present.sum()), 1))
        out[present] = landmarker.predict_many(images[present], boxes)[:, MOUTH]
    return torch.from_numpy(out)


def _mouth_points(landmarks: Tensor | np.ndarray, what: str) -> Tensor:
    """(T, 68, 2) or (T, 20, 2) landmarks -> the (T, 20, 2) mouth points as float64."""
    points = torch.as_tensor(np.asarray(landmarks) if isinstance(landmarks, np.ndarray) else landmarks)
    if points.ndim != 3 or points.shape[1:] not in ((68, 2), (N_MOUTH_POINTS, 2)):
        raise TfbenchError(
            f"LMD: {what} landmarks must be (T, 68, 2) or (T, 20, 2), got {tuple(points.shape)}"
        )
    return (points[:, MOUTH] if points.shape[1] == 68 else points).to(torch.float64)


def lmd_from_landmarks(
    pred_landmarks: Tensor | np.ndarray, target_landmarks: Tensor | np.ndarray, scale: float = 1.0
) -> Tensor:
    """(T,) float64 LMD per frame: mean over the mouth points of ||pred - target||_2, times `scale`.

    Takes (T, 68, 2) landmarks (points 48-67 are used) or (T, 20, 2) mouth points; a frame with a NaN point
    on either side (no face) gives NaN.
    """
    pred = _mouth_points(pred_landmarks, "generated")
    target = _mouth_points(target_landmarks, "ground-truth")
    if pred.shape != target.shape:
        raise TfbenchError(
            f"LMD: generated and ground-truth landmarks differ in shape: {tuple(pred.shape)} vs "
            f"{tuple(target.shape)}"
        )
    return torch.linalg.vector_norm(pred - target, dim=-1).mean(dim=-1) * scale


@dataclass(frozen=True)
class LMDResult:
    """The LMD of one video and what it was computed from.

    `per_frame` holds every frame's value, NaN for an excluded frame; `n_no_face_pred` / `n_no_face_target`
    count the frames without a face on each side (a frame may lack both). A video with no usable frame
    has `lmd` NaN and a `skipped` reason.
    """

    lmd: float
    n_frames: int
    n_used: int
    n_excluded: int
    n_no_face_pred: int
    n_no_face_target: int
    per_frame: tuple[float, ...]
    units: LMDUnits = "pixels"
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A plain dict for a results row (the tuple becomes a list)."""
        row = asdict(self)
        row["per_frame"] = list(self.per_frame)
        return row


def _units_scale(units: LMDUnits, height: int, width: int) -> float:
    if units == "pixels":
        return 1.0
    if units == "crop":
        return 1.0 / math.sqrt(height * width)
    raise TfbenchError(f"LMD: units must be 'pixels' or 'crop', got {units!r}")


def lmd_for_clip(
    preds: Tensor | np.ndarray,
    target: Tensor | np.ndarray,
    units: LMDUnits = "pixels",
    face_check: FaceCheck = "hog",
    landmarker: Landmarker | None = None,
    target_landmarks: Tensor | np.ndarray | None = None,
) -> LMDResult:
    """The LMD of one video: generated crops against the ground-truth crops of the same frames.

    Args:
        preds, target: uint8 RGB crops of the same shape, (T, H, W, 3) or (T, 3, H, W), tensors or arrays.
        units: "pixels" (default) or "crop" (divided by the crop side, see the module docstring).
        face_check: "hog" (frames without a detected face on either side are excluded) or "none".
        landmarker: a `Landmarker`; default dlib's 68-point model.
        target_landmarks: the ground truth's landmarks already computed with the same conventions
            ((T, 68, 2) or (T, 20, 2), NaN rows for no face), e.g. cached across runs; `target` then only
            gives the crop size.

    Returns:
        An `LMDResult`.

    Raises:
        TfbenchError: naming LMD and the shapes, for crops of different shapes or frame counts, a dtype
            other than uint8, or landmarks that do not fit the clip.
    """
    p = dlib_images(preds, "LMD")
    t = dlib_images(target, "LMD")
    if p.shape != t.shape:
        what = "frame count" if p.shape[1:] == t.shape[1:] else "shape"
        raise TfbenchError(
            f"LMD: generated and ground-truth crops differ in {what}: {p.shape} vs {t.shape} (as T, H, W, 3)"
        )
    scale = _units_scale(units, *p.shape[1:3])
    pred_lm = mouth_landmarks(p, face_check, landmarker)
    target_lm = mouth_landmarks(t, face_check, landmarker) if target_landmarks is None else target_landmarks
    per_frame = lmd_from_landmarks(pred_lm, target_lm, scale)
    if per_frame.shape[0] != p.shape[0]:
        raise TfbenchError(f"LMD: {per_frame.shape[0]} ground-truth landmark rows for {p.shape[0]} frames")
    usable = ~torch.isnan(per_frame)
    n_used = int(usable.sum())
    no_pred = int(torch.isnan(_mouth_points(pred_lm, "generated")).flatten(1).any(1).sum())
    no_target = int(torch.isnan(_mouth_points(target_lm, "ground-truth")).flatten(1).any(1).sum())
    skipped = None
    if n_used == 0:
        skipped = (
            f"no frame with a face in both crops: {len(p)} frames, {no_pred} without a face in the "
            f"generated crop, {no_target} in the ground truth"
        )
    return LMDResult(
        lmd=float(per_frame[usable].mean()) if n_used else float("nan"),
        n_frames=len(p),
        n_used=n_used,
        n_excluded=len(p) - n_used,
        n_no_face_pred=no_pred,
        n_no_face_target=no_target,
        per_frame=tuple(per_frame.tolist()),
        units=units,
        skipped=skipped,
    )


class LMD(VideoMeanMetric):
    """Mouth-landmark distance (lower is better): per frame, mean per video, mean over videos.

    `update(preds, target)` scores one video with `lmd_for_clip`; `update(result)` adds an `LMDResult`
    computed elsewhere (the runner scores each video once and keeps the row). Beside the base class's
    state it keeps the excluded-frame count and the number of unscored videos (`"sum"`), and each video's
    excluded count (`"cat"`). A video with no usable frame is left out of the mean (its per-video value
    is NaN) and counted in `n_unscored`; the mean's denominator is `n`.

    Args:
        units, face_check, landmarker: passed to `lmd_for_clip`.

    Example:
        >>> metric = LMD(face_check="none")
        >>> crops = torch.full((2, 64, 64, 3), 128, dtype=torch.uint8)
        >>> metric.update(crops, crops)
        >>> float(metric.compute()["lmd"])
        0.0
    """

    key = "lmd"
    higher_is_better = False
    DIRECTIONS: ClassVar[dict[str, bool]] = {"lmd": False}
    plot_lower_bound = 0.0

    n_excluded: Tensor
    n_unscored: Tensor
    excluded: list[Tensor]

    def __init__(
        self,
        units: LMDUnits = "pixels",
        face_check: FaceCheck = "hog",
        landmarker: Landmarker | None = None,
        **kwargs: Any,
    ) -> None:
        _units_scale(units, 1, 1)  # a bad option fails here, not at the first video
        if face_check not in ("hog", "none"):
            raise TfbenchError(f"LMD: face_check must be 'hog' or 'none', got {face_check!r}")
        super().__init__(**kwargs)
        self.units: LMDUnits = units
        self.face_check: FaceCheck = face_check
        self.landmarker = landmarker
        self.add_state("n_excluded", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_unscored", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("excluded", [], dist_reduce_fx="cat")

    def update(self, preds: Tensor | LMDResult, target: Tensor | None = None) -> None:
        """Add one video: generated and ground-truth uint8 crops of the same shape, or an `LMDResult`."""
        if isinstance(preds, LMDResult):
            result = preds
        else:
            if target is None:
                raise TfbenchError("LMD needs the ground-truth crops beside the generated ones")
            if self.landmarker is None:
                self.landmarker = Landmarker()
            result = lmd_for_clip(preds, target, self.units, self.face_check, self.landmarker)
        if result.units != self.units:
            raise TfbenchError(f"LMD: a result in {result.units!r} added to a metric in {self.units!r}")
        device = self.count.device
        self.n_excluded += result.n_excluded
        self.excluded.append(torch.tensor([result.n_excluded], dtype=torch.long, device=device))
        self.values.append(torch.tensor([result.lmd], dtype=torch.float64, device=device))
        if result.skipped is not None:
            self.n_unscored += 1
            return
        self.value_sum += result.lmd
        self.count += 1
        self.n_frames += result.n_used

    def compute(self) -> dict[str, Tensor]:
        """{"lmd": mean over scored videos, "n": videos scored, "n_frames": frames used, "n_excluded":
        frames excluded, "n_unscored": videos without a usable frame}; NaN when no video was scored."""
        out = super().compute()
        out.update(
            n_frames=self.n_frames.clone(),
            n_excluded=self.n_excluded.clone(),
            n_unscored=self.n_unscored.clone(),
        )
        return out

    def per_video_excluded(self) -> Tensor:
        """Each video's excluded-frame count, in the order of `per_video()`."""
        excluded = self.excluded
        if isinstance(excluded, Tensor):  # after a distributed sync the list is one tensor
            return excluded
        return torch.cat(excluded) if excluded else torch.zeros(0, dtype=torch.long)
