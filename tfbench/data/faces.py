"""The face pipeline: detect faces in a clip, link them into a track, and cut face crops by a named rule.

`FaceSettings` holds every parameter (its presets reproduce the references: `syncnet_pipeline` for LSE,
`wav2lip` for the generator's 96 px input); `process_frames` runs detection -> `track_faces` -> a crop
plan -> crops on decoded frames, `process_video` on a file (decoding in batches; frames are kept for the
crop pass only while they fit `keep_bytes`, otherwise the file is decoded a second time). A clip that
yields no usable face gives `FaceCrops` with empty arrays and a `skip_reason`, never an exception and
never a silent drop. The pieces live in `faces_detect` (detectors), `faces_track` (tracking), `faces_crop`
(crop rules, paste-back), `s3fd` and `landmarks`; the crop cache in `crop_cache`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tfbench.data.faces_crop import CropPlan, cut, paste_back, plan_syncnet_224, plan_wav2lip_96, resize_uint8
from tfbench.data.faces_detect import DETECTORS, DetectorOptions, FaceDetector, create_detector
from tfbench.data.faces_track import (
    Coverage,
    FaceTrack,
    FaceTrackResult,
    TrackRule,
    short_clip_reason,
    track_faces,
)
from tfbench.errors import TfbenchError

__all__ = [
    "DETECTORS",
    "PRESETS",
    "FaceCrops",
    "FaceDetector",
    "FaceSettings",
    "FaceTrack",
    "FaceTrackResult",
    "create",
    "crop_track",
    "detect_frames",
    "paste_back",
    "preset",
    "process_frames",
    "process_video",
    "track_faces",
]

CropRule = Literal["224", "96"]
_CROP_ONLY = {"224": ("crop_scale", "pad_value", "median_kernel"), "96": ("pads", "smooth_window")}


@dataclass(frozen=True)
class FaceSettings:
    """Every parameter of the face pipeline; the defaults are syncnet_python's (see `PRESETS`).

    Detection: `detector` (a `DETECTORS` name), `scale`, `confidence`, `upsample` (dlib), `box` (the
    `none` detector's fixed box). Tracking: `iou_threshold`, `max_gap` (missed frames bridged),
    `min_track` (a track needs more detections than this), `min_face_size` (px), `track_rule`
    ('longest' or 'largest'), `coverage` ('track': the chosen track's frames; 'full': every frame),
    `min_frames` (shorter clips are skipped). Crop: `crop` ('224' syncnet_python, '96' Wav2Lip) and its
    parameters. Decoding: `fps` (None keeps the native rate). `batch_size` only sets detector batches.
    """

    detector: str = "s3fd"
    scale: float = 0.25
    confidence: float = 0.9
    upsample: int = 0
    box: tuple[int, int, int, int] | None = None
    iou_threshold: float = 0.5
    max_gap: int = 25
    min_track: int = 100
    min_face_size: float = 100.0
    track_rule: TrackRule = "longest"
    coverage: Coverage = "track"
    min_frames: int = 5
    crop: CropRule = "224"
    crop_scale: float = 0.4
    pad_value: int = 110
    median_kernel: int = 13
    pads: tuple[int, int, int, int] = (0, 10, 0, 0)
    smooth_window: int = 5
    fps: float | None = 25.0
    batch_size: int = field(default=16, compare=False)

    def __post_init__(self) -> None:
        problems = []
        if self.detector not in DETECTORS:
            DETECTORS.get(self.detector)  # raises the did-you-mean error
        if self.crop not in _CROP_ONLY:
            problems.append(f"crop must be '224' or '96', got {self.crop!r}")
        if self.track_rule not in ("longest", "largest"):
            problems.append(f"track_rule must be 'longest' or 'largest', got {self.track_rule!r}")
        if self.coverage not in ("track", "full"):
            problems.append(f"coverage must be 'track' or 'full', got {self.coverage!r}")
        if not 0 < self.scale <= 4 or not 0 <= self.iou_threshold < 1:
            problems.append("scale must be in (0, 4] and iou_threshold in [0, 1)")
        if min(self.max_gap, self.min_track, self.min_frames, self.upsample) < 0 or self.batch_size < 1:
            problems.append("max_gap, min_track, min_frames and upsample must be >= 0, batch_size >= 1")
        if self.median_kernel < 1 or self.median_kernel % 2 == 0 or self.smooth_window < 1:
            problems.append("median_kernel must be odd and positive, smooth_window positive")
        if problems:
            raise TfbenchError("face settings: " + "; ".join(problems))

    @property
    def crop_size(self) -> int:
        return int(self.crop)

    def replace(self, **changes: Any) -> FaceSettings:
        """A copy with `changes` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def detector_options(
        self, weights: dict[str, Path] | None = None, device: str = "cpu"
    ) -> DetectorOptions:
        return DetectorOptions(self.scale, self.confidence, self.upsample, self.box, weights, device)

    def key_fields(self) -> dict[str, Any]:
        """The fields that change results (for cache keys): the other crop rule's parameters, the batch
        size, and the options the chosen detector does not read are left out."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.compare}
        for rule, names in _CROP_ONLY.items():
            if rule != self.crop:
                for name in names:
                    values.pop(name)
        if self.detector == "none":
            for name in ("scale", "confidence", "upsample"):
                values.pop(name)
        else:
            values.pop("box")
            if self.detector != "dlib":
                values.pop("upsample")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


PRESETS: dict[str, FaceSettings] = {
    # syncnet_python run_pipeline.py: S3FD at 0.25 scale, conf 0.9, IoU 0.5, 25 missed frames, min_track
    # 100, min face 100 px, crop_scale 0.4, padding value 110, 224 px crops, 25 fps.
    "syncnet_pipeline": FaceSettings(),
    # LatentSync's variant of the same pipeline keeps tracks of more than 50 detections.
    "syncnet_pipeline_50": FaceSettings(min_track=50),
    # Wav2Lip inference: face_alignment's S3FD at full resolution, best box with score > 0.5 per frame,
    # pads (0, 10, 0, 0), 5-frame mean smoothing, 96 px; every frame needs a face (gaps are bridged here).
    "wav2lip": FaceSettings(
        detector="s3fd_fan",
        scale=1.0,
        confidence=0.5,
        min_track=0,
        min_face_size=0.0,
        coverage="full",
        crop="96",
    ),
}


def preset(name: str, **overrides: Any) -> FaceSettings:
    """Settings `name` from `PRESETS` with `overrides`; naming another detector also takes that detector's
    default scale and confidence (its class's `default_scale` / `default_confidence`) unless those are
    overridden too."""
    if name not in PRESETS:
        raise TfbenchError(f"unknown face settings preset {name!r} (known: {', '.join(sorted(PRESETS))})")
    base = PRESETS[name]
    detector = overrides.get("detector", base.detector)
    if detector != base.detector:
        cls = DETECTORS.get(detector)
        overrides = {"scale": cls.default_scale, "confidence": cls.default_confidence, **overrides}
    return base.replace(**overrides)


@dataclass(frozen=True)
class FaceCrops:
    """The face crops of one clip and how they were made (what the crop cache stores).

    `crops` (T, S, S, 3) uint8 RGB for the clip frames `frame_indices` (T,); `boxes` (T, 4) float32 the
    tracked face box in frame pixels (x1, y1, x2, y2); `detected` (T,) False where the box was interpolated
    or held; `windows` (T, 4) int32 the cut window (y1, y2, x1, x2), what `paste_back` needs; `face_boxes`
    (T, 4) float32 the face box inside the crop; `landmarks` (T, 68, 2) float32 in crop pixels, or None.
    A skipped clip has T = 0 and a `skip_reason`. `n_tracks` counts the tracks that passed the filters.
    """

    crops: np.ndarray
    frame_indices: np.ndarray
    boxes: np.ndarray
    detected: np.ndarray
    windows: np.ndarray
    face_boxes: np.ndarray
    n_frames: int
    fps: float
    n_tracks: int
    tracks: tuple[dict[str, float | int], ...] = ()
    skip_reason: str | None = None
    landmarks: np.ndarray | None = None
    video_sha256: str | None = None
    settings_key: str | None = None

    @property
    def ok(self) -> bool:
        return self.skip_reason is None

    def __len__(self) -> int:
        return len(self.frame_indices)

    @classmethod
    def skipped(
        cls, reason: str, size: int, n_frames: int, fps: float, result: FaceTrackResult | None = None
    ) -> FaceCrops:
        """An empty result that says why."""
        return cls(
            crops=np.zeros((0, size, size, 3), np.uint8),
            frame_indices=np.zeros(0, np.int64),
            boxes=np.zeros((0, 4), np.float32),
            detected=np.zeros(0, bool),
            windows=np.zeros((0, 4), np.int32),
            face_boxes=np.zeros((0, 4), np.float32),
            n_frames=n_frames,
            fps=fps,
            n_tracks=0 if result is None else result.n_tracks,
            tracks=() if result is None else tuple(t.summary() for t in result.tracks),
            skip_reason=reason,
        )


def detect_frames(
    frames: Iterable[np.ndarray], detector: FaceDetector, batch_size: int = 16
) -> list[np.ndarray]:
    """Run `detector` over frame batches ((B, H, W, 3) arrays, any B); one (N, 5) array per frame."""
    out: list[np.ndarray] = []
    for batch in frames:
        for start in range(0, len(batch), batch_size):
            out.extend(detector.detect(batch[start : start + batch_size]))
    return out


def _track(detections: list[np.ndarray], s: FaceSettings) -> FaceTrackResult:
    return track_faces(
        detections,
        iou_threshold=s.iou_threshold,
        max_gap=s.max_gap,
        min_track=s.min_track,
        min_face_size=s.min_face_size,
        rule=s.track_rule,
        coverage=s.coverage,
        min_frames=s.min_frames,
    )


def crop_track(track: FaceTrack, frame_hw: tuple[int, int], settings: FaceSettings) -> CropPlan | str:
    """The crop windows of `track` under `settings.crop`, or a skip reason."""
    if settings.crop == "224":
        return plan_syncnet_224(
            track.boxes, frame_hw, settings.crop_scale, settings.median_kernel, 224, settings.pad_value
        )
    return plan_wav2lip_96(track.boxes, frame_hw, settings.pads, settings.smooth_window, 96)


def _assemble(
    track: FaceTrack, plan: CropPlan, crops: np.ndarray, result: FaceTrackResult, fps: float
) -> FaceCrops:
    return FaceCrops(
        crops=crops,
        frame_indices=track.frames.astype(np.int64),
        boxes=track.boxes.astype(np.float32),
        detected=track.detected.copy(),
        windows=plan.windows.astype(np.int32),
        face_boxes=plan.face_boxes,
        n_frames=result.n_frames,
        fps=fps,
        n_tracks=result.n_tracks,
        tracks=tuple(t.summary() for t in result.tracks),
    )


def _cropped(batches: Iterable[np.ndarray], track: FaceTrack, plan: CropPlan) -> np.ndarray:
    """Cut and resize the track's frames from a stream of frame batches, holding only the crops."""
    out = np.empty((track.length, plan.size, plan.size, 3), dtype=np.uint8)
    seen = 0
    for batch in batches:
        for offset in range(max(track.start - seen, 0), min(track.end - seen, len(batch))):
            i = seen + offset - track.start
            out[i] = resize_uint8(cut(batch[offset], plan.windows[i], plan.pad_value), plan.size, plan.size)
        seen += len(batch)
        if seen >= track.end:
            break
    if seen < track.end:
        raise TfbenchError(f"the video gave {seen} frames on the second decoding, {track.end} before")
    return out


def _finish(
    detections: list[np.ndarray],
    frame_hw: tuple[int, int],
    settings: FaceSettings,
    fps: float,
    frames: Callable[[], Iterable[np.ndarray]],
) -> FaceCrops:
    """Tracking, crop plan and crops once detection is done; `frames()` yields the frames again."""
    size, n = settings.crop_size, len(detections)
    result = _track(detections, settings)
    if result.track is None:
        return FaceCrops.skipped(result.skip_reason or "no face track", size, n, fps, result)
    plan = crop_track(result.track, frame_hw, settings)
    if isinstance(plan, str):
        return FaceCrops.skipped(plan, size, n, fps, result)
    return _assemble(result.track, plan, _cropped(frames(), result.track, plan), result, fps)


def process_frames(
    frames: np.ndarray, settings: FaceSettings, detector: FaceDetector, fps: float = 25.0
) -> FaceCrops:
    """The whole pipeline on decoded (T, H, W, 3) uint8 RGB frames."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise TfbenchError(
            f"face pipeline needs (T, H, W, 3) uint8 RGB frames, got {frames.dtype} {frames.shape}"
        )
    if (short := short_clip_reason(len(frames), settings.min_frames)) is not None:
        return FaceCrops.skipped(short, settings.crop_size, len(frames), fps)  # no detection work at all
    detections = detect_frames([frames], detector, settings.batch_size)
    return _finish(detections, frames.shape[1:3], settings, fps, lambda: [frames])


def process_video(
    path: str | Path, settings: FaceSettings, detector: FaceDetector, keep_bytes: int = 1 << 30
) -> FaceCrops:
    """The pipeline on a video file, decoded at `settings.fps` in batches (see the module docstring)."""
    from tfbench.media import iter_frames, video_fps

    path = Path(path)
    fps = float(settings.fps) if settings.fps is not None else video_fps(path)

    def batches() -> Iterator[np.ndarray]:
        for batch in iter_frames(path, batch_size=64, fps=settings.fps):
            yield batch.frames

    kept: list[np.ndarray] | None = []
    detections: list[np.ndarray] = []
    frame_hw, held = (0, 0), 0
    for batch in batches():
        frame_hw = batch.shape[1:3]
        detections.extend(detect_frames([batch], detector, settings.batch_size))
        held += batch.nbytes
        if kept is not None:
            kept.append(batch)
            kept = kept if held <= keep_bytes else None  # too long to hold: decode again for the crops
    return _finish(detections, frame_hw, settings, fps, batches if kept is None else (lambda: kept or []))


def create(
    settings: FaceSettings, weights: dict[str, Path] | None = None, device: str = "cpu"
) -> FaceDetector:
    """The detector `settings` names, built with its options."""
    return create_detector(settings.detector, settings.detector_options(weights, device))
