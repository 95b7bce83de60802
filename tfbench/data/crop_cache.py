"""The crop cache: face crops, boxes and landmarks per video, reused across runs, models and metrics.

An entry is keyed by the video's content (sha256 of its bytes) and by the pipeline settings (every field
of `FaceSettings` that changes results, the detector's weights sha256 or "none", and `CODE_VERSION`), so a
renamed or copied video hits and a changed setting or weights file misses. Layout:

    $TFBENCH_HOME/cache/crops/<settings key>/settings.json       what the key stands for (readable)
    $TFBENCH_HOME/cache/crops/<settings key>/<sha[:2]>/<sha>.npz  one video's entry
    $TFBENCH_HOME/cache/hashes/<sha1 of path>.json                memo: (path, size, mtime) -> sha256

Entries are written to a unique temporary name in their folder, fsynced and renamed with `os.replace`, so a
killed run leaves either a whole entry or none; a stale temporary file (its writer is gone, or it is a day
old) is deleted when its folder is next used, and an entry that fails to load is recomputed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tfbench.data.faces import FaceCrops, FaceSettings, process_video
from tfbench.data.faces_detect import DETECTORS, FaceDetector, create_detector
from tfbench.data.landmarks import Landmarker
from tfbench.weights import home_dir

CODE_VERSION = "faces-1"
"""Bumped whenever the face pipeline's output changes for the same settings: old entries then miss."""

_ARRAYS = ("crops", "frame_indices", "boxes", "detected", "windows", "face_boxes")
_STALE_SECONDS = 24 * 3600
_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write `path` through a unique temporary sibling, fsync it, and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, hashed once per (path, size, mtime): memoised in memory and on disk."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _HASH_MEMO:
        return _HASH_MEMO[key]
    memo = home_dir() / "cache" / "hashes" / f"{hashlib.sha1(str(path).encode()).hexdigest()}.json"
    try:
        record = json.loads(memo.read_text())
        if (record["path"], record["size"], record["mtime_ns"]) == key:
            _HASH_MEMO[key] = str(record["sha256"])
            return _HASH_MEMO[key]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    sha = digest.hexdigest()
    _HASH_MEMO[key] = sha
    text = json.dumps({"path": key[0], "size": key[1], "mtime_ns": key[2], "sha256": sha}).encode()
    with contextlib.suppress(OSError):  # a read-only home still works, it only hashes again next time
        _atomic_write(memo, lambda handle: handle.write(text))
    return sha


def weights_id(settings: FaceSettings, weights: dict[str, Path] | None = None) -> str:
    """The sha256 of the weights file `settings.detector` loads, or 'none' for detectors without one."""
    entry = DETECTORS.get(settings.detector).weights_entry
    if entry is None:
        return "none"
    from tfbench import weights as registry

    return file_sha256(registry.resolve(entry, weights))


def settings_key(
    settings: FaceSettings, weights: dict[str, Path] | None = None
) -> tuple[str, dict[str, Any]]:
    """(key, what it stands for): 24 hex digits of the sha256 of the canonical JSON of the description."""
    described = {
        "code_version": CODE_VERSION,
        "detector": settings.detector,
        "weights_sha256": weights_id(settings, weights),
        "settings": settings.key_fields(),
    }
    text = json.dumps(described, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24], described


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_temporaries(folder: Path) -> int:
    """Delete temporary files under `folder` whose writer (on this host) has died, or a day old."""
    removed, host, now = 0, socket.gethostname(), time.time()
    for tmp in folder.rglob(".*.tmp"):
        parts = tmp.name.rsplit(".", 4)  # .<name>.<host>.<pid>.<uuid>.tmp
        try:
            mine = len(parts) == 5 and parts[1] == host
            dead = mine and not _pid_alive(int(parts[2]))
            if dead or now - tmp.stat().st_mtime > _STALE_SECONDS:
                tmp.unlink()
                removed += 1
        except (OSError, ValueError):
            continue
    return removed


class CropCache:
    """Face crops per (video content, settings), computed on a miss and loaded on a hit.

    `hits`, `misses` (entries computed) and `recovered` (entries that failed to load, then recomputed)
    count lookups. The detector and the landmark model are built once per cache object, on the first
    miss that needs them; `detector` may be passed in to reuse one.
    """

    def __init__(
        self,
        root: Path | None = None,
        weights: dict[str, Path] | None = None,
        device: str = "cpu",
        detector: FaceDetector | None = None,
    ) -> None:
        self.root = Path(root) if root is not None else home_dir() / "cache" / "crops"
        self.weights = weights
        self.device = device
        self.hits = self.misses = self.recovered = 0
        self._detector = detector
        self._landmarker: Landmarker | None = None
        self._keys: dict[FaceSettings, str] = {}

    def folder(self, settings: FaceSettings) -> Path:
        """The folder of `settings`' entries, created (with its settings.json) and cleaned on first use."""
        if settings not in self._keys:
            key, described = settings_key(settings, self.weights)
            folder = self.root / key
            if not (folder / "settings.json").is_file():
                text = json.dumps(described, indent=2, sort_keys=True).encode()
                _atomic_write(folder / "settings.json", lambda handle: handle.write(text))
            clean_temporaries(folder)
            if not self._keys:  # once per cache object: the hash memo's folder too
                clean_temporaries(home_dir() / "cache" / "hashes")
            self._keys[settings] = key
        return self.root / self._keys[settings]

    def entry_path(self, video: str | Path, settings: FaceSettings) -> Path:
        sha = file_sha256(video)
        return self.folder(settings) / sha[:2] / f"{sha}.npz"

    def contains(self, video: str | Path, settings: FaceSettings) -> bool:
        """Whether an entry exists (it is not loaded, so not checked)."""
        return self.entry_path(video, settings).is_file()

    def detector(self, settings: FaceSettings) -> FaceDetector:
        if self._detector is None or self._detector.name != settings.detector:
            self._detector = create_detector(
                settings.detector, settings.detector_options(self.weights, self.device)
            )
        return self._detector

    def get_or_compute(self, video: str | Path, settings: FaceSettings, landmarks: bool = False) -> FaceCrops:
        """The crops of `video` under `settings`: loaded when cached, else computed and stored.

        With `landmarks`, an entry without them gets them from its stored crops (no detection) and is
        rewritten; a skipped clip is cached too, with its reason, so it is not re-detected either.
        """
        path = self.entry_path(video, settings)
        crops = self._load(path) if path.is_file() else None
        if crops is not None:
            self.hits += 1
        else:
            crops = process_video(video, settings, self.detector(settings))
            self.misses += 1  # counted once computed: an unreadable video raises and counts nothing
            crops = _with_keys(crops, path.stem, path.parent.parent.name)
            if not landmarks:
                self._store(path, crops)
        if landmarks and crops.landmarks is None:
            crops = _with_landmarks(crops, self._landmarks())
            self._store(path, crops)
        return crops

    def _landmarks(self) -> Landmarker:
        if self._landmarker is None:
            self._landmarker = Landmarker()
        return self._landmarker

    def _store(self, path: Path, crops: FaceCrops) -> None:
        arrays = {name: getattr(crops, name) for name in _ARRAYS}
        if crops.landmarks is not None:
            arrays["landmarks"] = crops.landmarks
        meta = {
            "n_frames": crops.n_frames,
            "fps": crops.fps,
            "n_tracks": crops.n_tracks,
            "tracks": list(crops.tracks),
            "skip_reason": crops.skip_reason,
            "video_sha256": crops.video_sha256,
            "settings_key": crops.settings_key,
            "code_version": CODE_VERSION,
        }
        arrays["meta"] = np.array(json.dumps(meta))
        _atomic_write(path, lambda handle: np.savez(handle, **arrays))

    def _load(self, path: Path) -> FaceCrops | None:
        """The entry at `path`, or None (and the file removed) if it is unreadable or inconsistent."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {name: data[name] for name in _ARRAYS}
                marks = data["landmarks"] if "landmarks" in data.files else None
            count = len(arrays["frame_indices"])
            if any(len(a) != count for a in arrays.values()) or (marks is not None and len(marks) != count):
                raise ValueError("arrays of different lengths")
            return FaceCrops(
                **arrays,
                n_frames=int(meta["n_frames"]),
                fps=float(meta["fps"]),
                n_tracks=int(meta["n_tracks"]),
                tracks=tuple(meta["tracks"]),
                skip_reason=meta["skip_reason"],
                landmarks=marks,
                video_sha256=meta["video_sha256"],
                settings_key=meta["settings_key"],
            )
        except Exception:  # a damaged entry (zip, JSON or shape errors) is recomputed, never trusted
            self.recovered += 1
            path.unlink(missing_ok=True)
            return None


def _with_keys(crops: FaceCrops, video_sha256: str, key: str) -> FaceCrops:
    from dataclasses import replace

    return replace(crops, video_sha256=video_sha256, settings_key=key)


def _with_landmarks(crops: FaceCrops, landmarker: Landmarker) -> FaceCrops:
    """68 landmarks per crop, in crop pixels, predicted from the tracked face box inside each crop."""
    from dataclasses import replace

    return replace(crops, landmarks=landmarker.predict_many(crops.crops, crops.face_boxes))
