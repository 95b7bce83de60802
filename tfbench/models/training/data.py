"""Training data: clips from the face-crop cache, 5-frame windows with their mel windows, step-keyed batches.

Each clip of a dataset split is cropped once by the face pipeline (the `wav2lip` preset: 96 px crops of every
frame) and cached by `CropCache`, so the three stages and later runs share the crops. A clip is used when
every frame has a crop, it has at least `MIN_CLIP_FRAMES` frames with audio, and it carries no known
audio-video offset (the synthetic data plants offsets in some clips and records them as `offset_frames`;
such clips would teach the networks a wrong alignment). Its Wav2Lip mel (`tfbench.audio.wav2lip_mel`) is
computed once and kept in memory (about 25 KB per second of audio); frame i's mel window starts at
int(80 * i / fps) and spans 16 steps (`tfbench.audio.mel_window_starts`), so a 5-frame window's sync mel is
its first frame's window.

Face crops are read through a per-process LRU of `cache_clips` clips (`ClipStore`): the clips read while
preparing stay in memory up to that count, so DataLoader workers forked afterwards share them; others are
read from the cache on first use in each worker.

Randomness is keyed, never drawn from a global stream: `StepBatchSampler` gives step s the sample positions
s*B .. s*B+B-1 of an endless sequence of epochs (epoch e is a permutation seeded by (seed, e)), and each item
draws its choices (negative offset, identity-reference window) from a generator seeded by (seed, position).
A run resumed at step k therefore sees exactly the batches an uninterrupted run sees from step k on, with any
number of workers.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from tfbench.audio import MEL_WINDOW, mel_window_starts, wav2lip_mel
from tfbench.data.crop_cache import CropCache
from tfbench.data.faces import FaceSettings
from tfbench.data.loading import load_samples
from tfbench.data.sample import Sample
from tfbench.errors import TfbenchError
from tfbench.media import read_audio

__all__ = [
    "MIN_CLIP_FRAMES",
    "WINDOW",
    "Clip",
    "ClipStore",
    "FaceWindows",
    "StepBatchSampler",
    "SyncWindows",
    "TrainData",
    "all_starts",
    "make_loader",
    "prepare_data",
    "silent_starts",
    "split_clips",
    "to_frames",
]

WINDOW = 5
"""Frames per window (0.2 s at 25 fps, the span of one 16-step mel window)."""
MIN_CLIP_FRAMES = 3 * WINDOW - 1
"""Every window of a clip needs a non-overlapping partner (its negative or its identity reference): a
window starting at s < 5 has one only when s + 5 <= T - 5, so T >= 14 frames (0.56 s)."""
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Clip:
    """One usable clip: its sample id and video (for the crop cache), usable frame count, fps and mel."""

    sample_id: str
    video: Path
    n_frames: int
    fps: float
    mel: np.ndarray = field(repr=False)

    def mel_windows(self, start: int, count: int = WINDOW) -> np.ndarray:
        """(count, 1, 80, 16) float32: the mel windows of frames start .. start + count - 1."""
        first = mel_window_starts(self.n_frames, self.fps, self.mel.shape[-1])[start : start + count]
        index = first[:, None] + np.arange(MEL_WINDOW)[None, :]
        return np.ascontiguousarray(np.moveaxis(self.mel[:, index], 1, 0)[:, None])


class ClipStore:
    """Clips and their face crops; crops are read from the crop cache through a per-process LRU."""

    def __init__(
        self,
        clips: Sequence[Clip],
        settings: FaceSettings,
        cache_root: Path,
        weights: dict[str, Path] | None = None,
        capacity: int = 256,
    ) -> None:
        self.clips = list(clips)
        self.settings, self.cache_root, self.weights, self.capacity = settings, cache_root, weights, capacity
        self._lru: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache: CropCache | None = None
        self._pid = 0

    def __len__(self) -> int:
        return len(self.clips)

    def remember(self, index: int, crops: np.ndarray) -> None:
        """Keep the crops of clip `index` in this process's LRU (the oldest are dropped past `capacity`)."""
        self._lru[index] = crops
        self._lru.move_to_end(index)
        while len(self._lru) > self.capacity:
            self._lru.popitem(last=False)

    def crops(self, index: int) -> np.ndarray:
        """(T, S, S, 3) uint8 crops of clip `index` (T >= its n_frames)."""
        if index in self._lru:
            self._lru.move_to_end(index)
            return self._lru[index]
        import os

        if self._cache is None or self._pid != os.getpid():  # a forked worker opens its own cache
            self._cache, self._pid = CropCache(self.cache_root, self.weights), os.getpid()
        faces = self._cache.get_or_compute(self.clips[index].video, self.settings)
        if len(faces) < self.clips[index].n_frames:
            raise TfbenchError(f"{self.clips[index].sample_id}: its cached crops changed since preparation")
        self.remember(index, faces.crops)
        return faces.crops

    def frames(self, index: int, start: int) -> np.ndarray:
        """(5, S, S, 3) uint8: the window of clip `index` starting at frame `start`."""
        return self.crops(index)[start : start + WINDOW]


def _partner(rng: np.random.Generator, n_frames: int, start: int) -> int:
    """A window start at least WINDOW frames from `start` (no overlap), uniform among those in the clip."""
    starts = np.arange(n_frames - WINDOW + 1)
    return int(rng.choice(starts[np.abs(starts - start) >= WINDOW]))


class SyncWindows(Dataset[dict[str, np.ndarray]]):
    """AVSyncNet pairs: item (index, position) is window `index` with its own mel window (label 1, even
    positions) or that of a non-overlapping window of the same clip (label 0, odd positions), so every
    batch of even size is balanced. Returns frames (5, S, S, 3) uint8, mel (1, 80, 16), label ()."""

    def __init__(self, store: ClipStore, clip_indices: Sequence[int], seed: int) -> None:
        self.store, self.seed = store, seed
        self.windows = [(c, s) for c in clip_indices for s in range(store.clips[c].n_frames - WINDOW + 1)]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, np.ndarray]:
        index, position = key
        clip, start = self.windows[index]
        label = position % 2 == 0
        rng = np.random.default_rng([self.seed, 1, position])
        audio = start if label else _partner(rng, self.store.clips[clip].n_frames, start)
        return {
            "frames": self.store.frames(clip, start),
            "mel": self.store.clips[clip].mel_windows(audio, 1)[0],
            "label": np.float32(label),
        }


class FaceWindows(Dataset[dict[str, np.ndarray]]):
    """Generator items: the ground-truth window, an identity-reference window of the same clip that does not
    overlap it (as Wav2Lip draws its reference), and each frame's mel window. Returns target and reference
    (5, S, S, 3) uint8 and mel (5, 1, 80, 16) float32."""

    def __init__(self, store: ClipStore, windows: Sequence[tuple[int, int]], seed: int) -> None:
        self.store, self.windows, self.seed = store, list(windows), seed

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, np.ndarray]:
        index, position = key
        clip, start = self.windows[index]
        rng = np.random.default_rng([self.seed, 1, position])
        reference = _partner(rng, self.store.clips[clip].n_frames, start)
        return {
            "target": self.store.frames(clip, start),
            "reference": self.store.frames(clip, reference),
            "mel": self.store.clips[clip].mel_windows(start),
        }


def all_starts(store: ClipStore, clip_indices: Sequence[int]) -> list[tuple[int, int]]:
    """Every (clip, start) window of the given clips."""
    return [(c, s) for c in clip_indices for s in range(store.clips[c].n_frames - WINDOW + 1)]


def silent_starts(store: ClipStore, clip_indices: Sequence[int], level: float) -> list[tuple[int, int]]:
    """The (clip, start) windows whose 16-step mel window stays below `level` at every step (mean over the
    80 bands): the silent stage's targets, frames with closed lips wherever the speaker is silent."""
    out = []
    for c in clip_indices:
        clip = store.clips[c]
        loudness = clip.mel.mean(axis=0)
        first = mel_window_starts(clip.n_frames, clip.fps, clip.mel.shape[-1])
        for start in range(clip.n_frames - WINDOW + 1):
            if loudness[first[start] : first[start] + MEL_WINDOW].max() < level:
                out.append((c, start))
    return out


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches for steps start .. stop - 1 of an endless epoch sequence; each element is (index, position).

    Step s holds positions s*B .. s*B+B-1; position p is item perm_e[p mod n] of epoch e = p // n, perm_e a
    permutation seeded by (seed, e). The batches depend on the step only, so a resumed run gets the same ones.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int, start: int, stop: int) -> None:
        if n_items < 1:
            raise TfbenchError("no training windows: the dataset has no usable clip for this stage")
        self.n, self.batch_size, self.seed, self.start, self.stop = n_items, batch_size, seed, start, stop
        self._epoch, self._perm = -1, np.zeros(0, np.int64)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def _index(self, position: int) -> int:
        epoch = position // self.n
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, np.random.default_rng([self.seed, 0, epoch]).permutation(self.n)
        return int(self._perm[position % self.n])

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.stop):
            first = step * self.batch_size
            yield [(self._index(p), p) for p in range(first, first + self.batch_size)]


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # a worker only slices arrays; its threads would compete with the model's


def make_loader(
    dataset: Dataset[dict[str, np.ndarray]], sampler: StepBatchSampler, num_workers: int, device: torch.device
) -> DataLoader[dict[str, np.ndarray]]:
    """A DataLoader over step-keyed batches; pinned memory when the model runs on CUDA."""
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=_worker_init if num_workers else None,
    )


def to_frames(windows: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(B, 5, S, S, 3) uint8 -> (B, 5, 3, S, S) float in [0, 1] on `device` (converted after the copy)."""
    x = windows.to(device, non_blocking=True)
    return x.permute(0, 1, 4, 2, 3).float().div_(255.0)


# --------------------------------------------------------------------------- preparing a split
@dataclass
class TrainData:
    """A prepared split: the clip store, which clips train and which validate, and the clips left out."""

    store: ClipStore
    train: list[int]
    val: list[int]
    skipped: list[tuple[str, str]]
    description: dict[str, object]


def _clip(sample: Sample, cache: CropCache, settings: FaceSettings) -> tuple[Clip, np.ndarray] | str:
    """The clip of `sample` and its crops, or why it cannot be used."""
    offset = sample.metadata.get("offset_frames", 0)
    if offset:
        return f"known audio-video offset of {offset} frames"
    faces = cache.get_or_compute(sample.video, settings)
    if not faces.ok:
        return f"face: {faces.skip_reason}"
    if not np.array_equal(faces.frame_indices, np.arange(len(faces))):
        return "face crops do not cover every frame"
    audio = read_audio(sample.audio)
    fps = faces.fps or settings.fps or 25.0
    n = min(len(faces), int(len(audio) * fps / 16000 + 1e-6))
    if n < MIN_CLIP_FRAMES:
        return f"{n} frames with audio and faces, fewer than {MIN_CLIP_FRAMES}"
    mel = wav2lip_mel(audio)
    if mel.shape[-1] < MEL_WINDOW:
        return "audio shorter than one mel window"
    return Clip(sample.id, Path(sample.video), n, float(fps), mel), faces.crops


def split_clips(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, val) clip indices: round(val_fraction * n) clips (at least 1 if n >= 2) held out at random."""
    n_val = 0 if n < 2 else min(n - 1, max(1, round(val_fraction * n)))
    order = np.random.default_rng([seed, 3]).permutation(n)
    return sorted(int(i) for i in order[n_val:]), sorted(int(i) for i in order[:n_val])


def prepare_data(
    dataset: str,
    root: Path,
    split: str,
    settings: FaceSettings,
    cache: CropCache,
    *,
    seed: int = 0,
    val_split: str | None = None,
    val_fraction: float = 0.05,
    limit: int | None = None,
    capacity: int = 256,
    progress: Progress | None = None,
) -> TrainData:
    """Crop (or load from the cache) every clip of `split`, compute its mel, and choose validation clips:
    those of `val_split` when given, else `val_fraction` of the clips. Raises when no clip is usable."""
    samples = load_samples(dataset, root, split, limit=limit, weights=cache.weights)
    n_train = len(samples)
    if val_split is not None:
        samples += load_samples(dataset, root, val_split, limit=limit, weights=cache.weights)
    clips: list[Clip] = []
    kept: list[np.ndarray] = []  # the first `capacity` clips' crops stay in memory; the rest are re-read
    skipped: list[tuple[str, str]] = []
    is_val: list[bool] = []
    for i, sample in enumerate(samples):
        try:
            made = _clip(sample, cache, settings)
        except TfbenchError as exc:  # an unreadable file costs one clip, not the run
            made = f"input: {exc}"
        if isinstance(made, str):
            skipped.append((sample.id, made))
        else:
            clips.append(made[0])
            if len(kept) < capacity:
                kept.append(made[1])
            is_val.append(i >= n_train)
        if progress is not None:
            progress(i + 1, len(samples))
    if not clips:
        reasons = "; ".join(f"{sid}: {why}" for sid, why in skipped[:3])
        raise TfbenchError(f"{dataset} {split}: no usable clip ({reasons})")
    store = ClipStore(clips, settings, cache.root, cache.weights, capacity)
    for index, array in enumerate(kept):
        store.remember(index, array)
    if val_split is not None:
        train = [i for i, v in enumerate(is_val) if not v]
        val = [i for i, v in enumerate(is_val) if v]
    else:
        train, val = split_clips(len(clips), val_fraction, seed)
    if not train or not val:
        raise TfbenchError(
            f"{dataset}: {len(train)} training and {len(val)} validation clip(s); both need at least one "
            f"usable clip (usable: {len(clips)}, left out: {len(skipped)})"
        )
    description: dict[str, object] = {
        "dataset": dataset,
        "root": str(root),
        "split": split,
        "val_split": val_split,
        "train_clips": len(train),
        "val_clips": [clips[i].sample_id for i in val],
        "skipped": len(skipped),
        "face_settings": settings.key_fields(),
    }
    return TrainData(store, train, val, skipped, description)
