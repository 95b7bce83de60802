"""`tfbench score`: metrics for videos another tool generated, optionally against ground-truth videos.

Generated videos are matched to ground-truth videos by relative path (the `folder` dataset with a
reference folder). Faces are tracked on the ground truth (or, without one, on the generated video) and
BOTH sides are cut with the same windows, so a crop difference can never pass for a quality difference
(a pitfall of peer evaluation code: FID on crops made differently for GT and generated frames). A generated
video and its ground truth of different lengths are scored over the common length, and the row records
every frame count and the mismatch (`frame_record`). The result is an ordinary run folder, so `compare`
and `report` work on it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tfbench.benchmark.distributed import DistributedContext
from tfbench.benchmark.results import STATUS_FAILED, STATUS_OK, STATUS_SKIPPED, RunStore
from tfbench.benchmark.stats import summarize
from tfbench.benchmark.summary import write_summary
from tfbench.data import Sample, load_samples
from tfbench.data.crop_cache import CropCache
from tfbench.data.faces import FaceCrops, preset
from tfbench.data.faces_crop import CropPlan, apply_plan
from tfbench.errors import TfbenchError
from tfbench.media import read_video
from tfbench.metrics.clip import refuse_unsupported_precision
from tfbench.metrics.suite import Clip, MetricSettings, MetricSuite

FPS, SAMPLE_RATE = 25.0, 16000
SUMMARY_KEYS = (
    "lse_d",
    "lse_c",
    "av_offset",
    "fid",
    "ssim",
    "psnr",
    "lpips",
    "lmd",
    "idsim",
    "sync_w2l",
    "avsync",
)
"""The metric keys of the `--json` summary: always all of them, null for a metric that was not run."""
DATASET_COUNTS = {"fid": "fid_frames"}
"""Dataset-level values (no per-video value) -> the dataset value that is their `n`."""


@dataclass(frozen=True)
class ScoreOptions:
    """What to score: `path` (a folder of mp4 files), `reference` (ground-truth folder) or None.

    `precision`: of the metrics' networks; a metric that cannot run in it is refused here."""

    path: Path
    out: Path
    reference: Path | None = None
    metrics: tuple[str, ...] = ("lse",)
    detector: str = "s3fd"
    overrides: dict[str, Path] = field(default_factory=dict)
    fid_resize: str = "pytorch_fid"
    lse_protocol: str = "tfbench"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        refuse_unsupported_precision(self.metrics, self.precision)

    def config_record(self, settings: dict[str, str]) -> dict[str, object]:
        return {
            "model": f"videos:{self.path.resolve()}",
            "dataset": "folder",
            "root": str(self.path.resolve()),
            "reference": None if self.reference is None else str(self.reference.resolve()),
            "metrics": list(self.metrics),
            "detector": self.detector,
            "fid_resize": self.fid_resize,
            "lse_protocol": self.lse_protocol,
            "precision": self.precision,
            "metric_settings": settings,
        }


def _cut(frames: np.ndarray, crops: FaceCrops, n: int, size: int, pad: int) -> np.ndarray:
    """Cut `frames` with the first `n` windows of `crops` (made on the ground truth)."""
    plan = CropPlan(crops.windows[:n], crops.face_boxes[:n], size, pad)
    return apply_plan(frames[crops.frame_indices[:n]], plan)


class Scorer:
    """Scores a folder of generated videos; metrics and the crop cache are built once."""

    def __init__(self, options: ScoreOptions, dist: DistributedContext) -> None:
        self.options = options
        settings = MetricSettings(
            device=dist.device,
            overrides=dict(options.overrides),
            fid_resize=options.fid_resize,
            lse_protocol=options.lse_protocol,
            precision=options.precision,
        )
        self.suite = MetricSuite(options.metrics, settings)
        if self.suite.needs_target and options.reference is None:
            raise TfbenchError(
                "full-reference metrics (ssim, psnr, lpips, fid, lmd, ...) need --reference GT_DIR"
            )
        self.cache = CropCache(weights=options.overrides, device=dist.device)
        self.crop_settings = preset("wav2lip", detector=options.detector, coverage="full", min_track=0)
        self.lse_settings = preset(
            "syncnet_pipeline", detector=options.detector, coverage="full", min_track=0, min_face_size=0
        )
        self.store = RunStore(options.out)

    def score_sample(self, sample: Sample) -> dict[str, object]:
        started = time.perf_counter()
        generated = read_video(sample.video)
        truth_path = sample.ground_truth or sample.video
        truth = read_video(truth_path) if sample.ground_truth is not None else generated
        if generated.frames.shape[1:3] != truth.frames.shape[1:3]:
            raise TfbenchError(
                f"{sample.video}: frame size {generated.frames.shape[1:3]} differs from its ground truth "
                f"{truth_path} {truth.frames.shape[1:3]}"
            )
        faces = self.cache.get_or_compute(truth_path, self.crop_settings)
        if not faces.ok:
            return {"status": STATUS_SKIPPED, "reason": f"face: {faces.skip_reason}"}
        assert generated.audio is not None
        audio_frames = int(len(generated.audio) * FPS / SAMPLE_RATE)
        n = min(len(faces), generated.n_frames, truth.n_frames, audio_frames)
        if n < 1:
            return {"status": STATUS_SKIPPED, "reason": "no frame with audio"}
        size = self.crop_settings.crop_size
        generated_224 = None
        if self.suite.needs_224:
            lse = self.cache.get_or_compute(truth_path, self.lse_settings)
            if not lse.ok:
                return {"status": STATUS_SKIPPED, "reason": f"face (224 crop): {lse.skip_reason}"}
            generated_224 = _cut(generated.frames, lse, n, 224, self.lse_settings.pad_value)
        clip = Clip(
            sample.id,
            _cut(generated.frames, faces, n, size, 0),
            generated.audio[: round(n * SAMPLE_RATE / FPS)],
            faces.crops[:n] if sample.ground_truth is not None else None,
            generated_224,
            video_path=sample.video,
        )
        values = self.suite.update(clip)
        videos = {
            "generated": generated.n_frames,
            "reference": truth.n_frames if sample.ground_truth is not None else None,
        }
        return {
            "status": STATUS_OK,
            "reason": None,
            **frame_record(n, videos, audio_frames),
            "seconds": time.perf_counter() - started,
            **values,
        }

    def samples(self) -> list[Sample]:
        """The videos under `path` (matched to `reference` by relative path), or the single file `path`."""
        path, reference = self.options.path, self.options.reference
        if not path.is_file():
            return load_samples("folder", path, reference=reference)
        if reference is not None and not reference.is_file():
            raise TfbenchError(f"--reference {reference}: scoring one video needs one ground-truth file")
        return [Sample(path.stem, path, path, reference or path, "folder", "all", ground_truth=reference)]

    def run(self, progress: Callable[[int, int], None] | None = None) -> RunStore:
        samples = self.samples()
        self.store.open(self.options.config_record(self.suite.settings_record()))
        done = self.store.finished_ids()
        todo = [s for s in samples if s.id not in done]
        for index, sample in enumerate(todo):
            row: dict[str, object] = {"sample_id": sample.id, "video": str(sample.video)}
            try:
                row.update(self.score_sample(sample))
            except TfbenchError as exc:
                row.update({"status": STATUS_FAILED, "reason": str(exc)})
            self.store.write_row(row)
            if progress is not None:
                progress(index + 1, len(todo))
        table = self.store.write_results()
        extra = {"crop_cache_hits": self.cache.hits, "crop_cache_misses": self.cache.misses}
        write_summary(self.store, table, self.suite.directions(), self.suite.compute(), extra)
        return self.store


def frame_record(scored: int, videos: Mapping[str, int | None], audio_frames: int) -> dict[str, object]:
    """Results-row values for the frame counts of one clip that was scored over its first `scored` frames.

    `n_frames` = `scored`; `n_frames_<name>` = each video's frame count (None where the clip has no such
    video, e.g. no reference); `n_frames_audio` = the whole video frames its audio covers. `frame_mismatch`
    is a sentence naming every count when a video has frames beyond `scored` (another input was shorter),
    else None. Audio longer than the videos is no mismatch: muxed audio often runs past the last frame (AAC
    pads its last packet), and it is simply cut to the video.
    """
    counts = {name: count for name, count in videos.items() if count is not None}
    mismatch = None
    if any(count > scored for count in counts.values()):
        listed = ", ".join(f"{name} {count}" for name, count in {**counts, "audio": audio_frames}.items())
        mismatch = f"frame counts differ ({listed}): scored the common {scored} frames"
    return {
        "n_frames": scored,
        **{f"n_frames_{name}": count for name, count in videos.items()},
        "n_frames_audio": audio_frames,
        "frame_mismatch": mismatch,
    }


def _number(value: float) -> float | None:
    """JSON has no NaN: a value that could not be computed is null."""
    return None if math.isnan(value) else value


def _row_stats(table: pd.DataFrame, key: str) -> dict[str, Any] | None:
    """{"mean", "std", "n"} of a per-video value that summary.json does not summarise (av_offset), or None
    when no row has it (its metric was not run)."""
    scored = table[table["status"] == STATUS_OK]
    if key not in scored:
        return None
    stats = summarize(pd.to_numeric(scored[key], errors="coerce").to_numpy(dtype=float))
    return {"mean": _number(stats.mean), "std": _number(stats.std), "n": stats.n}


def score_json(store: RunStore) -> dict[str, Any]:
    """The `--json` document: `{"videos": [{"id", values...}], "summary": {metric: {"mean", "std", "n"}}}`.

    Per-video keys are those of results.parquet (lse_d, lse_c, av_offset, ssim, ..., the frame counts and
    `frame_mismatch`). The summary has exactly the keys of `SUMMARY_KEYS`, null for a metric that was not
    run; a dataset-level value (fid) has std null and n = its frames."""
    table = store.rows()
    rows = json.loads(table.rename(columns={"sample_id": "id"}).to_json(orient="records"))
    summary = store.read_summary()
    dataset = summary["dataset_metrics"]
    flat: dict[str, Any] = {}
    for key in SUMMARY_KEYS:
        if key in summary["metrics"]:
            stats = summary["metrics"][key]
            flat[key] = {"mean": stats["mean"], "std": stats["std"], "n": stats["n"]}
        elif key in DATASET_COUNTS and key in dataset:
            flat[key] = {"mean": dataset[key], "std": None, "n": dataset.get(DATASET_COUNTS[key])}
        else:
            flat[key] = _row_stats(table, key)
    return {"videos": rows, "summary": flat}
