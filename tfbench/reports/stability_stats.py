"""The numbers of `tfbench stability` from the experts' window embeddings: spread, sync accuracy, reliability.

- Spread (the paper's Figure 1 in numbers): mean, variance and coefficient of variation (std / |mean|) of
  the in-sync window similarities pooled over all clips, the mean of the per-clip variances (the wobble
  along one curve), and for `syncnet` the variance of the per-clip LSE-C. Variances are sample variances
  (ddof = 1).
- Accuracy at telling in-sync windows from off-sync ones: every window of a clip paired with its own audio
  (label 1) and with the audio of one other window of the same clip at least 5 frames away, so the two
  never overlap (label 0, drawn uniformly with a generator seeded by (seed, clip index)). A pair counts as
  in sync when its similarity is above the threshold. The threshold maximises accuracy on the calibration
  clips (a seeded half of the clips, at least one); accuracy is reported on the other, evaluation clips.
- Reliability: for each perturbation, expert and clip score, the mean over clips of |perturbed - clean|,
  and that mean divided by the clean score's standard deviation across clips (comparable across scores).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tfbench.errors import TfbenchError
from tfbench.reports.stability_experts import ExpertWindows, pair_similarity

__all__ = [
    "MIN_NEGATIVE_OFFSET",
    "ClipResult",
    "ExpertStats",
    "Pair",
    "ReliabilityRow",
    "accuracy",
    "choose_threshold",
    "expert_stats",
    "reliability",
    "seeded_rng",
    "split_clips",
    "sync_pairs",
]

MIN_NEGATIVE_OFFSET = 5
"""Frames between a window and the audio window of its negative: 5 windows of 5 frames never overlap."""


@dataclass(frozen=True)
class ClipResult:
    """One clip: each expert's windows on the clean clip and its clip scores under each perturbation
    (`perturbed[perturbation][expert][score]`)."""

    sample_id: str
    windows: Mapping[str, ExpertWindows]
    perturbed: Mapping[str, Mapping[str, Mapping[str, float]]]


@dataclass(frozen=True)
class Pair:
    """A scored (video window, audio window) pair of one clip; label 1 = in sync."""

    expert: str
    sample_id: str
    part: str  # "calibration" or "evaluation"
    video_window: int
    audio_window: int
    label: int
    similarity: float


@dataclass(frozen=True)
class ExpertStats:
    """One row of the stability table (see the module docstring); `lse_c_variance` None where the expert
    has no LSE-C."""

    expert: str
    n_clips: int
    n_windows: int
    mean: float
    variance: float
    cv: float
    within_clip_variance: float
    lse_c_variance: float | None
    threshold: float
    accuracy: float
    calibration_accuracy: float
    n_evaluation_pairs: int


@dataclass(frozen=True)
class ReliabilityRow:
    """How far one clip score of one expert moves under one perturbation (lower is better)."""

    expert: str
    score: str
    perturbation: str
    mean_abs_change: float
    relative_change: float
    n_clips: int


def split_clips(sample_ids: Sequence[str], seed: int) -> dict[str, str]:
    """sample id -> "calibration" or "evaluation": a seeded half (at least one) calibrates the threshold."""
    if len(sample_ids) < 2:
        raise TfbenchError(
            f"stability needs at least 2 scored clips (one to choose the threshold, one to test it), "
            f"got {len(sample_ids)}"
        )
    order = np.random.default_rng(seed).permutation(len(sample_ids))
    n_calibration = len(sample_ids) // 2
    return {
        sample_ids[int(k)]: "calibration" if rank < n_calibration else "evaluation"
        for rank, k in enumerate(order)
    }


def sync_pairs(
    expert: str, sample_id: str, part: str, windows: ExpertWindows, rng: np.random.Generator
) -> list[Pair]:
    """Every window with its own audio, and with the audio of one non-overlapping window of the clip."""
    n = len(windows.similarity)
    pairs = [Pair(expert, sample_id, part, i, i, 1, float(windows.similarity[i])) for i in range(n)]
    starts = np.arange(n)
    video_index, audio_index = [], []
    for i in range(n):
        candidates = starts[np.abs(starts - i) >= MIN_NEGATIVE_OFFSET]
        if candidates.size:
            video_index.append(i)
            audio_index.append(int(rng.choice(candidates)))
    if video_index:
        similarity = pair_similarity(windows.video[video_index], windows.audio[audio_index])
        pairs += [
            Pair(expert, sample_id, part, i, j, 0, float(s))
            for i, j, s in zip(video_index, audio_index, similarity.tolist(), strict=True)
        ]
    return pairs


def accuracy(similarity: np.ndarray, label: np.ndarray, threshold: float) -> float:
    """The fraction of pairs where `similarity > threshold` agrees with the label."""
    return float(np.mean((similarity > threshold) == (label == 1)))


def choose_threshold(similarity: np.ndarray, label: np.ndarray) -> float:
    """The threshold with the highest accuracy on these pairs: a midpoint between two neighbouring distinct
    similarities, or just below / above all of them (ties: the lowest such threshold)."""
    values = np.unique(similarity)
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    scores = [accuracy(similarity, label, float(t)) for t in candidates]
    return float(candidates[int(np.argmax(scores))])


def _pair_arrays(pairs: Sequence[Pair]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([p.similarity for p in pairs]), np.array([p.label for p in pairs])


def expert_stats(expert: str, clips: Sequence[ClipResult], pairs: Sequence[Pair]) -> ExpertStats:
    """The stability-table row of `expert` from its clean windows and its scored pairs."""
    curves = [clip.windows[expert].similarity.numpy() for clip in clips]
    pooled = np.concatenate(curves)
    mean, variance = float(pooled.mean()), float(pooled.var(ddof=1)) if len(pooled) > 1 else float("nan")
    within = [float(c.var(ddof=1)) for c in curves if len(c) > 1]
    lse_c = [clip.windows[expert].clip_scores.get("lse_c") for clip in clips]
    lse_c_variance = None if None in lse_c else float(np.var(np.array(lse_c, dtype=float), ddof=1))
    calibration = [p for p in pairs if p.part == "calibration"]
    evaluation = [p for p in pairs if p.part == "evaluation"]
    threshold = choose_threshold(*_pair_arrays(calibration))
    return ExpertStats(
        expert=expert,
        n_clips=len(clips),
        n_windows=len(pooled),
        mean=mean,
        variance=variance,
        cv=float(np.sqrt(variance) / abs(mean)) if mean else float("nan"),
        within_clip_variance=float(np.mean(within)) if within else float("nan"),
        lse_c_variance=lse_c_variance,
        threshold=threshold,
        accuracy=accuracy(*_pair_arrays(evaluation), threshold),
        calibration_accuracy=accuracy(*_pair_arrays(calibration), threshold),
        n_evaluation_pairs=len(evaluation),
    )


def reliability(
    expert: str, scores: Sequence[str], perturbations: Sequence[str], clips: Sequence[ClipResult]
) -> list[ReliabilityRow]:
    """Rows of the reliability table for `expert`: one per (clip score, perturbation)."""
    rows = []
    for score in scores:
        clean = np.array([clip.windows[expert].clip_scores[score] for clip in clips])
        spread = float(clean.std(ddof=1)) if len(clean) > 1 else float("nan")
        for name in perturbations:
            moved = np.array([clip.perturbed[name][expert][score] for clip in clips])
            change = float(np.mean(np.abs(moved - clean)))
            relative = change / spread if spread > 0 else float("nan")
            rows.append(ReliabilityRow(expert, score, name, change, relative, len(clips)))
    return rows


def seeded_rng(seed: int, *key: int) -> np.random.Generator:
    """A generator for one (seed, clip index, ...) key: the same draws whatever else the run computes."""
    return np.random.default_rng([seed, *key])
