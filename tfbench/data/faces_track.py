"""Linking per-frame face detections into tracks, filling gaps, and choosing one track by an explicit rule.

The linking is syncnet_python's `track_shot`: a track starts at the first remaining detection, takes in
each later frame the remaining box that overlaps its last box by IoU > `iou_threshold`, and ends once
`max_gap` frames pass without one; this repeats until no detection is left. Two small differences, both
deliberate: a frame gives a track at most one box (the best-overlapping, where the reference takes the
first that passes), and the reference's mutation of the list it iterates is not reproduced. A track keeps
more than `min_track` detections (the reference's strict `>`) and a mean size above `min_face_size`
(max of mean width and mean height, as the reference); its gaps are filled by linear interpolation.

Nothing is dropped silently: `track_faces` returns a `FaceTrackResult` whose `skip_reason` says why a clip
yields no usable track (too short, no face, track too short, face too small, face missing for too long).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

TrackRule = Literal["longest", "largest"]
Coverage = Literal["track", "full"]


@dataclass(frozen=True)
class FaceTrack:
    """One face followed over consecutive frames `start` .. `start + len(boxes) - 1`.

    `boxes` (T, 4) float64 x1, y1, x2, y2 in frame pixels, linearly interpolated where `detected` is False;
    `scores` (T,) the detector's score (0 where interpolated or held).
    """

    start: int
    boxes: np.ndarray
    detected: np.ndarray
    scores: np.ndarray

    @property
    def length(self) -> int:
        """Frames spanned, interpolated ones included."""
        return len(self.boxes)

    @property
    def end(self) -> int:
        """One past the last frame."""
        return self.start + self.length

    @property
    def frames(self) -> np.ndarray:
        """The frame indices this track covers."""
        return np.arange(self.start, self.end)

    @property
    def n_detections(self) -> int:
        return int(self.detected.sum())

    @property
    def mean_size(self) -> float:
        """max(mean width, mean height) in pixels: syncnet_python's min_face_size test."""
        widths, heights = self.boxes[:, 2] - self.boxes[:, 0], self.boxes[:, 3] - self.boxes[:, 1]
        return float(max(widths.mean(), heights.mean()))

    @property
    def mean_area(self) -> float:
        return float(((self.boxes[:, 2] - self.boxes[:, 0]) * (self.boxes[:, 3] - self.boxes[:, 1])).mean())

    def summary(self) -> dict[str, float | int]:
        """Plain numbers for results and cache metadata."""
        return {
            "start": self.start,
            "end": self.end,
            "detections": self.n_detections,
            "mean_size": round(self.mean_size, 2),
        }


@dataclass(frozen=True)
class FaceTrackResult:
    """The outcome of tracking one clip.

    `track` is the chosen track (None when skipped); with coverage 'full' it spans every frame. `tracks` are
    all tracks that passed `min_track` and `min_face_size` (their number is `n_tracks`), `n_candidates`
    counts every linked track before those filters, `rule` names how `track` was chosen.
    """

    n_frames: int
    track: FaceTrack | None
    tracks: tuple[FaceTrack, ...]
    n_candidates: int
    rule: str
    skip_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.skip_reason is None

    @property
    def n_tracks(self) -> int:
        return len(self.tracks)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box `a` (4,) with boxes `b` (N, 4), x1 y1 x2 y2 (areas without +1, as the reference)."""
    w = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.asarray(np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0))


def link_tracks(
    detections: Sequence[np.ndarray], iou_threshold: float = 0.5, max_gap: int = 25
) -> list[FaceTrack]:
    """Greedy IoU linking of per-frame (N_i, >=4) detections into tracks (see the module docstring)."""
    remaining = [list(range(len(d))) for d in detections]
    tracks: list[FaceTrack] = []
    while True:
        members: list[tuple[int, int]] = []  # (frame, index into detections[frame])
        for t, candidates in enumerate(remaining):
            if members and t - members[-1][0] > max_gap:
                break
            if not candidates:
                continue
            if members:
                last = detections[members[-1][0]][members[-1][1], :4]
                overlaps = box_iou(last, detections[t][candidates, :4])
                best = int(np.argmax(overlaps))
                if overlaps[best] <= iou_threshold:
                    continue
            else:
                best = 0
            members.append((t, candidates.pop(best)))
        if not members:
            return tracks
        tracks.append(_interpolated(detections, members))


def _interpolated(detections: Sequence[np.ndarray], members: list[tuple[int, int]]) -> FaceTrack:
    frames = np.array([t for t, _ in members])
    raw = np.array([detections[t][i, :4] for t, i in members], dtype=np.float64)
    span = np.arange(frames[0], frames[-1] + 1)
    boxes = np.stack([np.interp(span, frames, raw[:, k]) for k in range(4)], axis=1)
    detected = np.isin(span, frames)
    scores = np.zeros(len(span))
    scores[frames - frames[0]] = [
        detections[t][i, 4] if detections[t].shape[1] > 4 else 1.0 for t, i in members
    ]
    return FaceTrack(int(frames[0]), boxes, detected, scores)


def _choose(tracks: Sequence[FaceTrack], rule: TrackRule) -> FaceTrack:
    """'longest': most frames, ties to the larger mean area; 'largest': largest mean area, ties to the
    longer; remaining ties go to the earlier track."""
    if rule == "longest":
        return max(tracks, key=lambda t: (t.length, t.mean_area, -t.start))
    if rule == "largest":
        return max(tracks, key=lambda t: (t.mean_area, t.length, -t.start))
    raise ValueError(f"unknown track rule {rule!r} (longest, largest)")


def _cover_all(track: FaceTrack, n_frames: int, max_gap: int) -> FaceTrack | str:
    """Extend `track` to every frame by holding its first/last box for at most `max_gap` frames at each
    end (the face appears late or leaves early); beyond that, a skip reason."""
    head, tail = track.start, n_frames - track.end
    if head > max_gap or tail > max_gap:
        return (
            f"the face track covers frames {track.start}-{track.end - 1} of {n_frames}: {head} frame(s) "
            f"before and {tail} after it have no face, more than max_gap {max_gap} (the face is missing or "
            f"leaves the frame)"
        )
    boxes = np.concatenate(
        [np.repeat(track.boxes[:1], head, 0), track.boxes, np.repeat(track.boxes[-1:], tail, 0)]
    )
    detected = np.concatenate([np.zeros(head, bool), track.detected, np.zeros(tail, bool)])
    scores = np.concatenate([np.zeros(head), track.scores, np.zeros(tail)])
    return FaceTrack(0, boxes, detected, scores)


def short_clip_reason(n_frames: int, min_frames: int) -> str | None:
    """The skip reason for a clip too short for one sync window, or None."""
    if n_frames >= min_frames:
        return None
    return f"clip has {n_frames} frame(s), fewer than min_frames {min_frames} (one sync window)"


def track_faces(
    detections: Sequence[np.ndarray],
    *,
    iou_threshold: float = 0.5,
    max_gap: int = 25,
    min_track: int = 100,
    min_face_size: float = 100.0,
    rule: TrackRule = "longest",
    coverage: Coverage = "track",
    min_frames: int = 5,
) -> FaceTrackResult:
    """Link, filter and choose: the whole tracking step for one clip's per-frame detections.

    `coverage='track'` (syncnet_python) returns the chosen track's own span; 'full' (Wav2Lip: a box for
    every frame) extends it to the whole clip or skips. A clip of fewer than `min_frames` frames (one
    5-frame sync window by default) is skipped before anything else.
    """
    n = len(detections)

    def skip(reason: str, tracks: tuple[FaceTrack, ...] = (), candidates: int = 0) -> FaceTrackResult:
        return FaceTrackResult(n, None, tracks, candidates, rule, reason)

    if (short := short_clip_reason(n, min_frames)) is not None:
        return skip(short)
    found = sum(len(d) for d in detections)
    if found == 0:
        return skip(f"no face detected in any of the {n} frames")
    candidates = link_tracks(detections, iou_threshold, max_gap)
    long_enough = [t for t in candidates if t.n_detections > min_track]
    if not long_enough:
        best = max(t.n_detections for t in candidates)
        return skip(
            f"longest face track has {best} detection(s), not more than min_track {min_track}",
            candidates=len(candidates),
        )
    tracks = tuple(t for t in long_enough if t.mean_size > min_face_size)
    if not tracks:
        size = max(t.mean_size for t in long_enough)
        return skip(
            f"faces too small: largest mean size {size:.0f} px, not above min_face_size {min_face_size:g}",
            candidates=len(candidates),
        )
    chosen = _choose(tracks, rule)
    if coverage == "full":
        extended = _cover_all(chosen, n, max_gap)
        if isinstance(extended, str):
            return skip(extended, tracks, len(candidates))
        chosen = extended
    return FaceTrackResult(n, chosen, tracks, len(candidates), rule)
