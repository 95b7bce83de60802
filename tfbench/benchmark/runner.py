"""`tfbench run`: generate every sample of a split with one model, score it, and keep the run folder.

Per sample: decode the target once, take its face crops from the crop cache (detected once per dataset,
not per model), generate, paste back, write the mp4, score from the same in-memory frames, and write one
results row atomically. Video and audio of different lengths are generated and scored over the common
length, and the row records both counts and the mismatch (`frame_mismatch`). Preparing the next samples
(decode, crops) runs in a bounded thread pool while the model works on the current one. Rerunning the same
command resumes; under `torchrun` each rank takes a disjoint shard and rank 0 writes the summary.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

import tfbench.baselines  # noqa: F401  (registers the built-in models)
from tfbench.benchmark.distributed import DistributedContext
from tfbench.benchmark.options import RunOptions
from tfbench.benchmark.results import STATUS_FAILED, STATUS_OK, STATUS_SKIPPED, RunStore
from tfbench.benchmark.score import frame_record
from tfbench.benchmark.summary import write_summary
from tfbench.data import Sample, load_samples
from tfbench.data.crop_cache import CropCache
from tfbench.data.faces import FaceCrops, FaceSettings, paste_back, preset
from tfbench.data.faces_crop import CropPlan, apply_plan
from tfbench.errors import TfbenchError
from tfbench.media import read_audio, read_video, write_video
from tfbench.metrics.suite import Clip, MetricSettings, MetricSuite, refuse_full_reference
from tfbench.models.protocol import (
    GenerationRequest,
    TalkingFaceModel,
    check_output,
    load_model,
    parse_model_options,
)

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class Prepared:
    """A sample decoded and cropped, ready for the model; `skip` says why it cannot be generated."""

    sample: Sample
    frames: np.ndarray | None = None
    audio: np.ndarray | None = None
    faces: FaceCrops | None = None
    lse: FaceCrops | None = None
    skip: str | None = None
    resampled_from: float | None = None


def face_settings(options: RunOptions) -> tuple[FaceSettings, FaceSettings]:
    """Crop settings for generation (the model's crop, every frame) and for LSE (syncnet_python's 224 rule
    on the same detector, every frame, no minimum track length: the `tfbench` LSE protocol)."""
    generation = preset(options.face_preset, detector=options.detector, coverage="full", min_track=0)
    lse = preset("syncnet_pipeline", detector=options.detector, coverage="full", min_track=0, min_face_size=0)
    return generation, lse


def safe_name(sample_id: str) -> str:
    """A file name for a sample id ("lrs2/123/00001" -> "lrs2__123__00001")."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", sample_id.replace("/", "__"))


class Runner:
    """One run: the model, the metrics and the crop cache are built once and reused for every sample."""

    store: RunStore

    def __init__(self, options: RunOptions, dist: DistributedContext) -> None:
        if dist.is_distributed and options.out is None:
            raise TfbenchError("a distributed run needs --out (every rank must write to the same folder)")
        self.options = options
        self.dist = dist
        self.cache = CropCache(weights=options.overrides, device=dist.device)
        self.generation_settings, self.lse_settings = face_settings(options)
        self.model_options = parse_model_options(options.model, options.model_options)
        self.model: TalkingFaceModel = load_model(
            options.model, dist.device, options.overrides, self.model_options
        )
        if self.model.crop_size != self.generation_settings.crop_size:
            raise TfbenchError(
                f"model {options.model} takes {self.model.crop_size} px crops but face preset "
                f"{options.face_preset} makes {self.generation_settings.crop_size} px crops"
            )
        settings = MetricSettings(
            device=dist.device,
            overrides=dict(options.overrides),
            fid_resize=options.fid_resize,
            lse_protocol=options.lse_protocol,
            ssim_variant=options.ssim_variant,
            precision=options.precision,
        )
        self.suite = MetricSuite(options.metrics, settings)

    def samples(self) -> list[Sample]:
        """This rank's samples of the split (after --limit), in id order."""
        samples = load_samples(
            self.options.dataset,
            self.options.root,
            self.options.split,
            protocol=self.options.protocol,
            limit=self.options.limit,
            weights=self.options.overrides,
        )
        refuse_full_reference(self.suite.names, samples[0].protocol if samples else "reconstruction")
        return samples[self.dist.rank :: self.dist.world_size]

    def prepare(self, sample: Sample) -> Prepared:
        """Decode the target and driving audio, and take the face crops (from the cache when present)."""
        try:
            video = read_video(sample.video, require_audio=sample.audio == sample.video)
            audio = video.audio if sample.audio == sample.video else read_audio(sample.audio)
            faces = self.cache.get_or_compute(sample.video, self.generation_settings)
            if not faces.ok:
                return Prepared(sample, skip=f"face: {faces.skip_reason}")
            lse = None
            if self.suite.needs_224:
                lse = self.cache.get_or_compute(sample.video, self.lse_settings)
                if not lse.ok:
                    return Prepared(sample, skip=f"face (224 crop): {lse.skip_reason}")
                if not np.array_equal(lse.frame_indices, faces.frame_indices):
                    return Prepared(sample, skip="face: the 224 and generation crops cover different frames")
        except TfbenchError as exc:
            return Prepared(sample, skip=f"input: {exc}")
        assert audio is not None
        return Prepared(sample, video.frames, audio, faces, lse, None, video.resampled_from)

    def process(self, item: Prepared) -> dict[str, object]:
        """Generate, write and score one prepared sample; returns its results row."""
        row: dict[str, object] = {"sample_id": item.sample.id, "video": str(item.sample.video)}
        if item.skip is not None:
            return {**row, "status": STATUS_SKIPPED, "reason": item.skip}
        assert item.frames is not None and item.audio is not None and item.faces is not None
        started = time.perf_counter()
        audio_frames = int(len(item.audio) * 25.0 / 16000 + 1e-6)
        n = min(len(item.faces), audio_frames)
        if n < 1:
            return {**row, "status": STATUS_SKIPPED, "reason": "audio shorter than one frame"}
        faces = item.faces.crops[:n]
        audio = item.audio[: round(n * 16000 / 25.0)]
        reference = faces[[n // 2]]  # one fixed identity frame, the same for every model
        request = GenerationRequest(item.sample.id, faces, reference, audio)
        generated = check_output(request, self.model.generate(request), self.model.crop_size)
        frames = paste_back(item.frames[item.faces.frame_indices[:n]], generated, item.faces.windows[:n])
        video_path = self.store.videos_dir / f"{safe_name(item.sample.id)}.mp4"
        write_video(video_path, _even(frames), 25.0, audio)
        generated_224 = None
        if item.lse is not None:  # the ground truth's 224 windows: GT and generated crops are cut alike
            plan = CropPlan(item.lse.windows[:n], item.lse.face_boxes[:n], 224, self.lse_settings.pad_value)
            generated_224 = apply_plan(frames, plan)
        target = faces if item.sample.protocol == "reconstruction" else None
        clip = Clip(item.sample.id, generated, audio, target, generated_224, video_path=video_path)
        values = self.suite.update(clip)
        return {
            **row,
            "status": STATUS_OK,
            "reason": None,
            **frame_record(n, {"reference": len(item.frames)}, audio_frames),
            "resampled_from_fps": item.resampled_from,
            "output": str(video_path.relative_to(self.store.run_dir)),
            "seconds": time.perf_counter() - started,
            **values,
        }

    def run(self, progress: ProgressCallback | None = None) -> RunStore:
        """Process every unfinished sample of this rank, then (rank 0) write results and summary."""
        used = [*self.model.weights, *(w for m in self.suite.metrics.values() for w in m.weights)]
        record = self.options.config_record(
            self.dist, self.suite.settings_record(), used, self.model_options.record(), self.model.label
        )
        self.store = RunStore(self.options.out_dir(record))
        self.store.open(record)
        done = self.store.finished_ids()
        todo = [s for s in self.samples() if s.id not in done]
        for index, item in enumerate(self._prefetched(todo)):
            try:
                row = self.process(item)
            except TfbenchError as exc:
                row = {"sample_id": item.sample.id, "status": STATUS_FAILED, "reason": str(exc)}
            self.store.write_row(row)
            if progress is not None:
                progress(index + 1, len(todo))
        dataset_values = self.suite.compute()  # collective under torchrun: every rank calls it
        self.dist.barrier()
        if self.dist.is_main:
            table = self.store.write_results()
            write_summary(self.store, table, self.suite.directions(), dataset_values, self.cache_stats())
        return self.store

    def cache_stats(self) -> dict[str, int]:
        return {"crop_cache_hits": self.cache.hits, "crop_cache_misses": self.cache.misses}

    def _prefetched(self, samples: list[Sample]) -> Iterator[Prepared]:
        """Samples prepared ahead by `workers` threads, at most `workers + 1` in flight (bounded memory)."""
        workers = max(1, self.options.workers)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tfbench-prepare") as pool:
            pending: list[Future[Prepared]] = []
            queue = iter(samples)
            for sample in queue:
                pending.append(pool.submit(self.prepare, sample))
                if len(pending) > workers:
                    yield pending.pop(0).result()
            for future in pending:
                yield future.result()


def _even(frames: np.ndarray) -> np.ndarray:
    """Crop a row/column if needed: H.264 yuv420p needs even frame sizes."""
    height, width = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    return frames[:, :height, :width]
