"""`tfbench stability`: how steadily each lip-sync expert scores in-sync (ground-truth) audio-lip pairs.

The paper's Figure 1 plots the cosine similarity of ground-truth audio-lip pairs over the 5-frame windows of
random LRS2 test clips: SyncNet's curve jumps about, AVSyncNet's stays level. This study recomputes that for
any dataset and any registered expert (`stability_experts.EXPERTS`), and adds the numbers behind the plot
(`stability_stats`): spread of the similarities, accuracy at telling in-sync from off-sync windows, and how
far each expert's clip scores move under slight perturbations of the clips (`stability_perturb`).

Clips: `samples` drawn at random (seeded) from the split, after leaving out clips with a known audio-video
offset (the synthetic data records one in `offset_frames`): ground truth must be in sync. Faces go through
the pipeline `tfbench score` and `tfbench run` use (crop cache, `syncnet_pipeline` 224 crops and `wav2lip`
96 crops, every frame, any detector including `none`). A clip is kept only if every expert can score it, so
all experts are compared on the same clips; the others are listed with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tfbench.data import Sample, load_samples
from tfbench.data.crop_cache import CropCache
from tfbench.data.faces import FaceCrops, FaceSettings, preset
from tfbench.data.faces_crop import CropPlan, apply_plan
from tfbench.errors import TfbenchError
from tfbench.media import TARGET_FPS, TARGET_SAMPLE_RATE, read_audio, read_video
from tfbench.reports.stability_experts import EXPERTS, ExpertWindows, StabilityExpert
from tfbench.reports.stability_perturb import PERTURBATIONS
from tfbench.reports.stability_stats import (
    ClipResult,
    ExpertStats,
    Pair,
    ReliabilityRow,
    expert_stats,
    reliability,
    seeded_rng,
    split_clips,
    sync_pairs,
)

__all__ = ["StabilityOptions", "StabilityReport", "StabilityStudy", "choose_samples"]

Progress = Callable[[int, int], None]
_NEGATIVE_KEY = 1  # second seed key of the off-sync pair draws; perturbations use 100 + their index


@dataclass(frozen=True)
class StabilityOptions:
    """What to study; `overrides` are `--weights NAME=PATH` files, `figure_clips` the curves per panel."""

    dataset: str
    root: Path
    split: str = "test"
    samples: int = 20
    experts: tuple[str, ...] = ("syncnet", "avsyncnet")
    perturbations: tuple[str, ...] = ("jitter", "jpeg", "brightness", "h264")
    detector: str = "s3fd"
    seed: int = 0
    overrides: dict[str, Path] = field(default_factory=dict)
    device: str = "cpu"
    batch_size: int = 20
    figure_clips: int = 3

    def record(self) -> dict[str, Any]:
        """The settings as plain JSON values (stored beside the numbers)."""
        return {
            "dataset": self.dataset,
            "root": str(self.root),
            "split": self.split,
            "samples": self.samples,
            "experts": list(self.experts),
            "perturbations": {name: PERTURBATIONS.get(name).description for name in self.perturbations},
            "detector": self.detector,
            "seed": self.seed,
            "weights": {name: str(path) for name, path in self.overrides.items()},
        }


@dataclass(frozen=True)
class StabilityReport:
    """Everything `tfbench stability` writes: per-expert rows, reliability rows, scored pairs and curves."""

    options: StabilityOptions
    clips: tuple[ClipResult, ...]
    skipped: tuple[tuple[str, str], ...]
    parts: dict[str, str]
    stats: tuple[ExpertStats, ...]
    reliability: tuple[ReliabilityRow, ...]
    pairs: tuple[Pair, ...]

    def curves(self) -> dict[str, dict[str, list[float]]]:
        """expert -> sample id -> the clip's window similarities."""
        return {
            expert: {clip.sample_id: clip.windows[expert].similarity.tolist() for clip in self.clips}
            for expert in self.options.experts
        }


def choose_samples(options: StabilityOptions) -> tuple[list[Sample], list[tuple[str, str]]]:
    """`options.samples` clips of the split drawn with `options.seed` (sorted by id), and the clips left
    out for a known audio-video offset."""
    if options.samples < 2:
        raise TfbenchError(f"--samples {options.samples}: the study needs at least 2 clips")
    samples = load_samples(options.dataset, options.root, options.split, weights=options.overrides)
    in_sync = [s for s in samples if not s.metadata.get("offset_frames")]
    left_out = [
        (s.id, f"known audio-video offset of {s.metadata['offset_frames']} frames")
        for s in samples
        if s.metadata.get("offset_frames")
    ]
    rng = np.random.default_rng(options.seed)
    chosen = rng.choice(len(in_sync), size=min(options.samples, len(in_sync)), replace=False)
    return sorted((in_sync[int(k)] for k in chosen), key=lambda s: s.id), left_out


def _crop_settings(detector: str) -> dict[int, FaceSettings]:
    """The crops of `tfbench score` / `run`, by size: syncnet_python's 224 rule and Wav2Lip's 96 rule."""
    return {
        224: preset("syncnet_pipeline", detector=detector, coverage="full", min_track=0, min_face_size=0),
        96: preset("wav2lip", detector=detector, coverage="full", min_track=0),
    }


class StabilityStudy:
    """The experts, loaded once, and the crop cache; `run` scores the chosen clips and computes the report."""

    def __init__(self, options: StabilityOptions) -> None:
        from tfbench.weights import resolve

        if not options.experts:
            raise TfbenchError("--experts: name at least one expert")
        for name in options.perturbations:
            PERTURBATIONS.get(name)  # an unknown name fails here, with did-you-mean, before any work
        self.options = options
        self.experts: dict[str, StabilityExpert] = {}
        for name in options.experts:
            cls = EXPERTS.get(name)
            path = resolve(cls.weights_name, options.overrides)
            self.experts[name] = cls(path, options.device, options.batch_size)
        sizes = {expert.crop_size for expert in self.experts.values()}
        self.settings = {size: s for size, s in _crop_settings(options.detector).items() if size in sizes}
        self.cache = CropCache(weights=options.overrides, device=options.device)

    def _score(
        self, frames: np.ndarray, windows: dict[int, np.ndarray], faces: dict[int, FaceCrops], wav: np.ndarray
    ) -> dict[str, ExpertWindows | str]:
        crops = {}
        for size, settings in self.settings.items():
            pad = settings.pad_value if settings.crop == "224" else 0  # the 96 rule pads with 0 (as `score`)
            plan = CropPlan(windows[size], faces[size].face_boxes[: len(frames)], size, pad)
            crops[size] = apply_plan(frames, plan)
        return {name: e.windows(crops[e.crop_size], wav, TARGET_FPS) for name, e in self.experts.items()}

    def score_clip(self, index: int, sample: Sample) -> ClipResult | str:
        """Every expert's windows of one clip, clean and perturbed; or why the clip cannot be scored."""
        video = read_video(sample.video, require_audio=sample.audio == sample.video)
        wav = video.audio if sample.audio == sample.video else read_audio(sample.audio)
        assert wav is not None
        faces = {size: self.cache.get_or_compute(sample.video, s) for size, s in self.settings.items()}
        for size, crops in faces.items():
            if not crops.ok:
                return f"face ({size} px crop): {crops.skip_reason}"
        first = next(iter(faces.values()))
        if any(not np.array_equal(f.frame_indices, first.frame_indices) for f in faces.values()):
            return "face: the 224 and 96 px crops cover different frames"
        n = min(len(first), video.n_frames, int(len(wav) * video.fps / TARGET_SAMPLE_RATE))
        frames = video.frames[first.frame_indices[:n]]
        wav = wav[: round(n * TARGET_SAMPLE_RATE / video.fps)]
        windows = {size: f.windows[:n] for size, f in faces.items()}
        clean = self._score(frames, windows, faces, wav)
        reasons = [f"{name}: {w}" for name, w in clean.items() if isinstance(w, str)]
        if reasons:
            return "; ".join(reasons)
        perturbed: dict[str, dict[str, dict[str, float]]] = {}
        for k, name in enumerate(self.options.perturbations):
            rng = seeded_rng(self.options.seed, index, 100 + k)
            moved_frames, moved_windows = PERTURBATIONS.get(name).apply(frames, windows, rng)
            scores = self._score(moved_frames, moved_windows, faces, wav)  # same lengths: same windows
            perturbed[name] = {e: w.clip_scores for e, w in scores.items() if isinstance(w, ExpertWindows)}
        kept = {name: w for name, w in clean.items() if isinstance(w, ExpertWindows)}
        return ClipResult(sample.id, kept, perturbed)

    def run(self, progress: Progress | None = None) -> StabilityReport:
        """Score the chosen clips, then compute the tables (nothing is written here)."""
        samples, skipped = choose_samples(self.options)
        clips: list[ClipResult] = []
        for index, sample in enumerate(samples):
            try:
                result = self.score_clip(index, sample)
            except TfbenchError as exc:  # an unreadable file: listed with its reason, as `run` does
                result = f"input: {exc}"
            if isinstance(result, str):
                skipped.append((sample.id, result))
            else:
                clips.append(result)
            if progress is not None:
                progress(index + 1, len(samples))
        return self.report(clips, skipped)

    def report(self, clips: list[ClipResult], skipped: list[tuple[str, str]]) -> StabilityReport:
        """The tables of scored clips: pairs per expert, per-expert rows and reliability rows."""
        parts = split_clips([clip.sample_id for clip in clips], self.options.seed)
        stats, rows, pairs = [], [], []
        for name, expert in self.experts.items():
            expert_pairs: list[Pair] = []
            for index, clip in enumerate(clips):
                rng = seeded_rng(self.options.seed, index, _NEGATIVE_KEY)
                expert_pairs += sync_pairs(
                    name, clip.sample_id, parts[clip.sample_id], clip.windows[name], rng
                )
            stats.append(expert_stats(name, clips, expert_pairs))
            rows += reliability(name, list(expert.clip_score_directions), self.options.perturbations, clips)
            pairs += expert_pairs
        return StabilityReport(
            self.options, tuple(clips), tuple(skipped), parts, tuple(stats), tuple(rows), tuple(pairs)
        )
