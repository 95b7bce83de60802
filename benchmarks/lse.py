"""LSE-D / LSE-C: tfbench scoring a folder of videos, against syncnet_python's route and S's compute limit.

Run from the repository root: `python -m benchmarks.lse [--videos 4] [--frames 50] [--rounds 2]
[--precision fp32|bf16] [--threads N] [--device auto|cpu|cuda] [--json OUT]` (default OUT:
benchmarks/results/lse.json, or lse_bf16.json). Clocks and rounds: see benchmarks/_common.py.

Input: N in-sync synthetic LRS2-layout mp4 files (160x160 faces, 25 fps, AAC audio) written by tfbench's
generator, and one random-weight `S` whose BatchNorm statistics are calibrated on such clips (a realistic
embedding scale), saved in the published `syncnet_v2.model` format; the timings do not depend on the
weights, and nothing is downloaded. Both routes score the files under Wav2Lip's LRS route (tfbench's
`w2l_lrs` protocol), whose frame path is the reference's: every frame written as a JPEG file the way
ffmpeg's image2 muxer writes it and read back, the whole frame resized to 224, the audio as 16-bit PCM.
- tfbench: what `tfbench score FOLDER --metrics lse --lse-protocol w2l_lrs` runs for each file,
  `lse_for_video`: decode, the JPEG round trip in memory, resize, MFCC in torch, windows as strided views,
  S in batches of 32 with the lip tower in channels_last_3d, all 31 offsets as one tensor expression;
- reference: Wav2Lip's `calculate_scores_LRS.py` re-created per file: decode; each frame written as a JPEG
  file (libavcodec's mjpeg at ffmpeg's defaults, `encode_jpeg`) and the audio as a 16 kHz 16-bit WAV file;
  the files read back (JPEG decoded as cv2.imread does, BGR; `resize_uint8`: cv2.resize's arithmetic;
  scipy's wavfile); then syncnet_python's `evaluate` as transcribed in tests/test_lse.py:
  python_speech_features MFCC, the clip stacked as float64 then float32, windows concatenated in batches of
  20, S in its loaded (contiguous) layout, `calc_pdist`'s loop per window;
- limit: S's two forward passes alone on the same windows, stacked as float32 in tfbench's batches
  beforehand, the lip tower in channels_last_3d and (first round only) contiguous; in `--precision`.
Both routes start from S loaded from its file (a run loads it once, whatever the number of files; loading
and `prepare_syncnet` take `model_load_s`, untimed in the routes). Also measured: `tfbench_score_s`, the whole
`tfbench score` command path (`Scorer`, model loading and a cold crop cache included) on the folder, which
also decodes every file and cuts the 96 px and 224 px crops other metrics read; `decode_s`, the
CPU-side preparation of tfbench's route alone (decode, JPEG round trip, resize), and `decode_bound`: it takes
longer than the limit, so a fast device would wait for the CPU.
Printed: the times, the ratios and the largest absolute difference between the routes' LSE-D, LSE-C and
31-value curves (offsets compared exactly). With `--precision bf16` tfbench and the limit run in bfloat16:
the difference is then bf16's deviation from the fp32 reference.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.io import wavfile

from benchmarks._common import (
    default_json,
    devices,
    machine,
    parser,
    print_table,
    run_rounds,
    set_threads,
    summarize,
    synthetic_videos,
    timed,
    write_result,
)
from tests.test_lse import _reference_evaluate  # the parity tests' transcription of the reference
from tfbench.audio import syncnet_mfcc
from tfbench.benchmark.distributed import DistributedContext
from tfbench.benchmark.score import ScoreOptions, Scorer
from tfbench.data.faces_crop import resize_uint8
from tfbench.data.synthetic import SynthConfig
from tfbench.media import read_video
from tfbench.metrics.clip import MetricSettings
from tfbench.metrics.lse import LSEResult, lse_windows, plan_windows, prepare_syncnet
from tfbench.metrics.lse_protocols import (
    LSE_PROTOCOLS,
    TrackInput,
    decode_jpeg,
    encode_jpeg,
    lse_for_video,
    prepare_tracks,
    quantise_int16,
)
from tfbench.metrics.precision import Precision, forward_precision
from tfbench.models.syncnet_python import SyncNetS, load_syncnet_v2
from tfbench.models.syncnet_training import calibrate_batchnorm, save_syncnet_v2, synthetic_sync_clips

PROTOCOL = "w2l_lrs"
REFERENCE_BATCH = 20  # syncnet_python's default --batch_size
BATCH = MetricSettings().batch_size  # the windows per forward pass of `tfbench score` and `tfbench run`
Batches = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Setup:
    """What every route of one measurement reads: the files, S's weights, a scratch folder, the device."""

    folder: Path
    videos: list[Path]
    weights: Path
    work: Path
    device: torch.device
    precision: Precision


def calibrated_syncnet(path: Path) -> Path:
    """A random `S` (seed 0) with BatchNorm statistics of 16 windows of a synthetic talking face, saved."""
    torch.manual_seed(0)
    model = SyncNetS()
    config = SynthConfig("lrs2", speakers=1, clips=1, seconds=1.0, seed=99, offset_fraction=0.0)
    calibrate_batchnorm(model, synthetic_sync_clips(config), 16)
    return save_syncnet_v2(model, path)


def prepared(path: Path) -> TrackInput:
    """The 224 px frames and 16-bit audio that `w2l_lrs` scores for one file (decode, JPEG round trip)."""
    video = read_video(path, fps=None)
    assert video.audio is not None  # read_video raises for a file without audio
    tracks = prepare_tracks(video.frames, video.audio, LSE_PROTOCOLS.get(PROTOCOL), None, fps=video.fps)
    if isinstance(tracks, str):
        raise RuntimeError(f"{path}: {tracks}")
    return tracks[0]


def decode_route(setup: Setup) -> int:
    """tfbench's CPU-side preparation alone; returns the frames prepared."""
    return sum(len(prepared(path).crops) for path in setup.videos)


def tfbench_route(setup: Setup, model: SyncNetS) -> dict[Path, LSEResult]:
    """Each file scored as the LSE metric of `tfbench score` scores it, with its `prepare_syncnet` model."""
    device, precision = str(setup.device), setup.precision
    return {
        path: lse_for_video(
            path, PROTOCOL, model, device=device, batch_size=BATCH, precision=precision
        ).results[0]
        for path in setup.videos
    }


@contextmanager
def environment(name: str, value: str) -> Iterator[None]:
    """`os.environ[name] = value` for the duration of the block."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before


def score_route(setup: Setup) -> dict[str, tuple[float, float]]:
    """`tfbench score FOLDER --metrics lse --detector none --lse-protocol w2l_lrs`, as the CLI builds it, in a
    fresh run folder with a fresh TFBENCH_HOME (a cold crop cache); (LSE-D, LSE-C) per video file."""
    run = setup.work / f"score-{uuid.uuid4().hex[:8]}"
    with environment("TFBENCH_HOME", str(run / "home")):
        options = ScoreOptions(
            path=setup.folder,
            out=run / "out",
            metrics=("lse",),
            detector="none",
            overrides={"syncnet_v2": setup.weights},
            lse_protocol=PROTOCOL,
            precision=setup.precision,
        )
        rows = Scorer(options, DistributedContext(device=str(setup.device))).run().rows()
    columns = zip(rows["video"], rows["lse_d"], rows["lse_c"], strict=True)
    return {str(video): (float(lse_d), float(lse_c)) for video, lse_d, lse_c in columns}


def dump_files(path: Path, folder: Path) -> None:
    """What the reference's two ffmpeg calls leave in its temporary folder: `ffmpeg -i V -threads 1 -f image2
    %06d.jpg` and `ffmpeg -i V -ac 1 -vn -acodec pcm_s16le -ar 16000 audio.wav`."""
    video = read_video(path, fps=None)
    for i, data in enumerate(encode_jpeg(video.frames, video.fps), start=1):
        (folder / f"{i:06d}.jpg").write_bytes(data)
    assert video.audio is not None  # read_video raises for a file without audio
    samples = np.rint(quantise_int16(video.audio) * 32768).astype(np.int16)
    wavfile.write(folder / "audio.wav", 16000, samples)


def reference_route(setup: Setup, net: SyncNetS) -> dict[Path, dict[str, Any]]:
    """Per file: the dump, the files read back and syncnet_python's evaluate; S as loaded (contiguous)."""
    results = {}
    for path in setup.videos:
        with tempfile.TemporaryDirectory(prefix="ref-", dir=setup.work) as tmp:
            folder = Path(tmp)
            dump_files(path, folder)
            frames = [decode_jpeg(f.read_bytes())[..., ::-1] for f in sorted(folder.glob("*.jpg"))]
            images = [resize_uint8(np.ascontiguousarray(frame), 224, 224) for frame in frames]
            _, audio = wavfile.read(folder / "audio.wav")
        results[path] = _reference_evaluate(net, images, audio, batch_size=REFERENCE_BATCH)
    return results


def limit_batches(setup: Setup, layout: torch.memory_format) -> tuple[Batches, int, int]:
    """Every scored window of every file as float32 batches on the device (video in `layout`), and the
    numbers of frames and windows they cover."""
    batches: Batches = []
    frames = windows = 0
    for path in setup.videos:
        track = prepared(path)
        mfcc = torch.as_tensor(syncnet_mfcc(track.wav))
        plan = plan_windows(len(track.crops), mfcc.shape[1], len(track.wav))
        video, audio = lse_windows(torch.from_numpy(track.crops), mfcc, plan.n_windows, "rgb")
        for start in range(0, plan.n_windows, BATCH):
            v = video[start : start + BATCH].to(setup.device, torch.float32, memory_format=layout)
            batches.append((v, audio[start : start + BATCH].to(setup.device, torch.float32)))
        frames, windows = frames + plan.n_frames_used, windows + plan.n_windows
    return batches, frames, windows


def limit_route(model: SyncNetS, batches: Batches, precision: Precision) -> None:
    """S's forward passes alone."""
    device = next(model.parameters()).device
    with torch.inference_mode(), forward_precision(device, precision):
        for video, audio in batches:
            model.forward_video(video)
            model.forward_audio(audio)


def differences(
    ours: dict[Path, LSEResult], ref: dict[Path, dict[str, Any]], score: dict[str, tuple[float, float]]
) -> dict[str, Any]:
    """The largest absolute difference between tfbench's and the reference's LSE-D, LSE-C and curves (and
    of the scores alone), LSE-D's largest relative one, whether every offset agrees, and the largest
    difference between `tfbench score`'s LSE-D / LSE-C and tfbench's route."""
    pairs = [(ours[path], ref[path]) for path in ref]
    scores = [max(abs(a.min_dist - b["min_dist"]), abs(a.conf - b["conf"])) for a, b in pairs]
    curves = [float(np.abs(np.asarray(a.curve) - b["curve"]).max()) for a, b in pairs]
    cli = [np.subtract(score[str(path)], (ours[path].min_dist, ours[path].conf)) for path in ref]
    return {
        "max_abs_diff": max(scores + curves),
        "max_abs_diff_scores": max(scores),
        "max_rel_diff_lse_d": max(abs(a.min_dist - b["min_dist"]) / abs(b["min_dist"]) for a, b in pairs),
        "offsets_equal": all(a.offset == b["offset"] for a, b in pairs),
        "tfbench_score_max_abs_diff": float(np.abs(cli).max()),
    }


def measure(setup: Setup, rounds: int) -> dict[str, Any]:
    """Every route on one device (best of `rounds`, interleaved), their ratios and differences."""
    load_s, model = timed(lambda: prepare_syncnet(load_syncnet_v2(setup.weights, setup.device)), setup.device)
    contiguous = load_syncnet_v2(setup.weights, setup.device)  # the reference's layout
    limits = {
        "channels_last_3d": (model, limit_batches(setup, torch.channels_last_3d)[0]),
        "contiguous_format": (contiguous, limit_batches(setup, torch.contiguous_format)[0]),
    }
    _, frames, windows = limit_batches(setup, torch.contiguous_format)
    for net, batches in limits.values():  # first-call set-up (oneDNN / cuDNN plans), untimed
        limit_route(net, batches[:1], setup.precision)
    routes: dict[str, Callable[[], Any]] = {
        "tfbench": partial(tfbench_route, setup, model),
        "reference": partial(reference_route, setup, contiguous),
        "tfbench_score": partial(score_route, setup),
        "decode": partial(decode_route, setup),
        **{
            name: partial(limit_route, net, batches, setup.precision)
            for name, (net, batches) in limits.items()
        },
    }
    times, results = run_rounds(routes, rounds, setup.device, once=("contiguous_format",))
    last = {name: values[-1] for name, values in results.items()}
    result = summarize(times, frames, list(limits))
    decode_s = min(times["decode"]["wall"])
    return {
        **machine(setup.device),
        "videos": len(setup.videos),
        "windows": windows,
        "lse_protocol": PROTOCOL,
        "precision": setup.precision,
        "batch_size": BATCH,
        "reference_batch_size": REFERENCE_BATCH,
        "rounds": rounds,
        "model_load_s": load_s["wall"],
        **result,
        **differences(last["tfbench"], last["reference"], last["tfbench_score"]),
        "tfbench_score_s": min(times["tfbench_score"]["wall"]),
        "tfbench_score_over_limit": min(times["tfbench_score"]["wall"]) / result["limit_s"],
        "decode_s": decode_s,
        "decode_bound": decode_s > result["limit_s"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser("python -m benchmarks.lse", __doc__, videos=4, frames=50, rounds=2).parse_args(argv)
    set_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="tfbench-lse-bench-") as tmp:
        work = Path(tmp)
        videos = synthetic_videos(work / "data", args.videos, args.frames)
        weights = calibrated_syncnet(work / "syncnet_v2.model")
        runs = [
            measure(Setup(work / "data", videos, weights, work, device, args.precision), args.rounds)
            for device in devices(args.device)
        ]
    title = (
        f"LSE ({PROTOCOL}) of {args.videos} videos x {args.frames} frames, {args.precision}, batch {BATCH}"
    )
    print_table(title, runs, "max |diff|")
    for run in runs:
        print(
            f"{run['device'][:27]:<28}tfbench score (cold crop cache) {run['tfbench_score_s']:.2f} s = "
            f"{run['tfbench_score_over_limit']:.2f}x limit; decode + JPEG + resize {run['decode_s']:.2f} s "
            f"(decode-bound: {run['decode_bound']}); offsets equal: {run['offsets_equal']}"
        )
    return write_result(
        args.json or default_json("lse", args.precision), runs, "python -m benchmarks.lse", argv
    )


if __name__ == "__main__":
    main()
