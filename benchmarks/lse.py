"""LSE-D / LSE-C: tfbench's batched scoring against syncnet_python's route and against S's compute limit.

Run from the repository root: `python -m benchmarks.lse [--videos 4] [--frames 30] [--rounds 2] [--threads N]
[--jpeg-dump] [--json OUT]` (default OUT: benchmarks/results/lse.json). As in `benchmarks.fid`, each timing is
the best of `--rounds` interleaved repetitions, on the wall clock and on the process's CPU clock (the number
other jobs on a shared CPU do not move with `--threads 1`); the 1-minute load average is recorded.

Three timings over the same N synthetic clips (224x224 BGR face crops, syncnet_python's crop rule on the
whole-frame box, as decoded frames sit in memory, and 16 kHz int16 audio), one random-weight `S`
(the timings do not depend on the weights; nothing is downloaded):
- tfbench: `lse_for_clip_wav` per clip: MFCC (torch), strided windows, batches of 20 through `S`, and the
  offset curve for all windows and offsets as one tensor expression;
- reference: syncnet_python's `SyncNetInstance.evaluate` from its decoded inputs, as transcribed in
  tests/test_lse.py (`_reference_evaluate`): python_speech_features MFCC, the clip stacked as float64 then
  float32, windows sliced and concatenated in batches of 20, and `calc_pdist`'s loop per window; with
  `--jpeg-dump` it also writes every frame as a JPEG file the way ffmpeg's image2 muxer does and reads the
  files back (tfbench then takes the same frames through `jpeg_round_trip` in memory);
- limit: `S`'s two forward passes alone on the same windows, pre-stacked as float32 in batches of 20, in
  the faster of two memory layouts (contiguous, as the metric runs; channels_last_3d for the lip tower).
The largest absolute difference between the two routes' LSE-D, LSE-C and curves is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.fid import cpu_name, timed
from tests.test_lse import _mfcc, _reference_evaluate  # the parity tests' transcription of the reference
from tfbench.data.synthetic import SynthConfig
from tfbench.metrics.lse import DEFAULT_BATCH_SIZE, LSEResult, lse_for_clip_wav, lse_windows, plan_windows
from tfbench.metrics.lse_protocols import decode_jpeg, encode_jpeg, jpeg_round_trip
from tfbench.models.syncnet_python import SyncNetS
from tfbench.models.syncnet_training import SyncClip, calibrate_batchnorm, sync_clip, synthetic_sync_clips

RESULTS = Path(__file__).parent / "results" / "lse.json"
Clip = tuple[np.ndarray, np.ndarray]  # (T, 224, 224, 3) uint8 BGR crops, int16 audio


def benchmark_clips(n: int, n_frames: int, seed: int = 0) -> list[Clip]:
    """N synthetic lrs2 clips of `n_frames` frames: BGR 224 crops and int16 audio (as wavfile.read gives)."""
    config = SynthConfig("lrs2", speakers=n, clips=1, seconds=n_frames / 25, seed=seed, offset_fraction=0.0)
    clips: list[SyncClip] = synthetic_sync_clips(config)
    return [(c.frames, np.clip(np.rint(c.wav * 32768), -32768, 32767).astype(np.int16)) for c in clips]


def jpeg_files(frames_bgr: np.ndarray, folder: Path) -> list[np.ndarray]:
    """The reference's frame path: `ffmpeg -i V -threads 1 -f image2 %06d.jpg` (ffmpeg's mjpeg encoder at
    its defaults, through PyAV), then the sorted files read back in BGR order as cv2.imread does."""
    for i, data in enumerate(encode_jpeg(np.ascontiguousarray(frames_bgr[..., ::-1]), 25.0)):
        (folder / f"{i + 1:06d}.jpg").write_bytes(data)
    return [decode_jpeg(f.read_bytes())[..., ::-1] for f in sorted(folder.glob("*.jpg"))]


def tfbench_route(model: SyncNetS, clips: list[Clip], jpeg: bool) -> list[LSEResult]:
    """What tfbench runs per clip: (optionally the in-memory JPEG round trip) then `lse_for_clip_wav`."""
    results = []
    for frames, audio in clips:
        if jpeg:
            frames = jpeg_round_trip(np.ascontiguousarray(frames[..., ::-1]), 25.0)[..., ::-1]
        results.append(lse_for_clip_wav(model, torch.from_numpy(np.ascontiguousarray(frames)), audio))
    return results


def reference_route(model: SyncNetS, clips: list[Clip], jpeg: bool) -> list[dict[str, Any]]:
    """syncnet_python's evaluate per clip (see the module docstring)."""
    results = []
    for frames, audio in clips:
        if jpeg:
            with tempfile.TemporaryDirectory(prefix="tfbench-lse-bench-") as tmp:
                images = jpeg_files(frames, Path(tmp))
        else:
            images = list(frames)
        results.append(_reference_evaluate(model, images, audio, batch_size=DEFAULT_BATCH_SIZE))
    return results


def limit_batches(clips: list[Clip], layout: torch.memory_format) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every scored window of every clip, stacked as float32 in batches of 20 (video in `layout`)."""
    batches = []
    for frames, audio in clips:
        mfcc = torch.from_numpy(_mfcc(audio)).float()
        plan = plan_windows(len(frames), mfcc.shape[1], len(audio))
        video, windows = lse_windows(torch.from_numpy(frames), mfcc, plan.n_windows)
        for start in range(0, plan.n_windows, DEFAULT_BATCH_SIZE):
            v = video[start : start + DEFAULT_BATCH_SIZE].float().contiguous(memory_format=layout)
            batches.append((v, windows[start : start + DEFAULT_BATCH_SIZE].float().contiguous()))
    return batches


def limit_route(model: SyncNetS, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    with torch.inference_mode():
        for video, audio in batches:
            model.forward_video(video)
            model.forward_audio(audio)


def max_abs_diff(ours: list[LSEResult], ref: list[dict[str, Any]]) -> float:
    diffs = [
        max(abs(a.min_dist - float(b["min_dist"])), abs(a.conf - float(b["conf"])),
            float(np.abs(np.asarray(a.curve) - np.asarray(b["curve"])).max()))
        for a, b in zip(ours, ref, strict=True)
    ]  # fmt: skip
    return max(diffs)


def measure(clips: list[Clip], device: torch.device, rounds: int, jpeg: bool) -> dict[str, Any]:
    """The three timings on one device (best of `rounds`, interleaved), and the routes' largest difference."""
    torch.manual_seed(0)
    model = SyncNetS().to(device)
    calibrate_batchnorm(model, [sync_clip(f, a) for f, a in clips], 32)  # realistic embedding scale, untimed
    layouts = {"contiguous_format": torch.contiguous_format, "channels_last_3d": torch.channels_last_3d}
    limits = {
        name: [(v.to(device), a.to(device)) for v, a in limit_batches(clips, fmt)]
        for name, fmt in layouts.items()
    }
    limit_route(model, [limits["contiguous_format"][0]])  # first-call set-up (oneDNN / cuDNN plans), untimed
    limit_route(model, [limits["channels_last_3d"][0]])
    routes: dict[str, Callable[[], Any]] = {
        "tfbench": partial(tfbench_route, model, clips, jpeg),
        "reference": partial(reference_route, model, clips, jpeg),
        **{name: partial(limit_route, model, batches) for name, batches in limits.items()},
    }
    times: dict[str, dict[str, list[float]]] = {}
    last: dict[str, Any] = {}
    for i in range(rounds):  # the order alternates, so that a drifting load favours no route
        for name in list(routes) if i % 2 == 0 else list(routes)[::-1]:
            seconds, last[name] = timed(routes[name], device)
            for clock, value in seconds.items():
                times.setdefault(name, {}).setdefault(clock, []).append(value)
    windows = sum(len(v) for v, _ in limits["contiguous_format"])
    frames = sum(len(f) for f, _ in clips)
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0],
        "videos": len(clips),
        "frames": frames,
        "windows": windows,
        "batch_size": DEFAULT_BATCH_SIZE,
        "rounds": rounds,
        "jpeg_dump": jpeg,
        "all_rounds_s": times,
        "max_abs_diff": max_abs_diff(last["tfbench"], last["reference"]),
        "offsets_equal": [r.offset for r in last["tfbench"]] == [int(r["offset"]) for r in last["reference"]],
    }
    for clock, suffix in (("wall", ""), ("cpu", "_cpu")):
        best = {name: min(values[clock]) for name, values in times.items()}
        layout = min(limits, key=best.__getitem__)
        tfb, ref, lim = best["tfbench"], best["reference"], best[layout]
        result |= {
            f"tfbench{suffix}_s": tfb,
            f"reference{suffix}_s": ref,
            f"limit{suffix}_s": lim,
            f"limit{suffix}_layout": layout,
            f"limit{suffix}_s_by_layout": {name: best[name] for name in limits},
            f"tfbench_over_limit{suffix}": tfb / lim,
            f"reference_over_limit{suffix}": ref / lim,
            f"frames_per_s{suffix}": {
                "tfbench": frames / tfb,
                "reference": frames / ref,
                "limit": frames / lim,
            },
        }
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lse", description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=4, help="synthetic clips (default 4)")
    parser.add_argument("--frames", type=int, default=30, help="frames per clip (default 30: 25 windows)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions; the best counts")
    parser.add_argument("--jpeg-dump", action="store_true", help="include the reference's JPEG frame dump")
    parser.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: CPU, and CUDA if any"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"output (default {RESULTS})")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] if args.device in ("auto", "cpu") else []
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        devices.append(torch.device("cuda"))
        torch.backends.cudnn.allow_tf32 = False  # full float32, so that the two routes can agree to 1e-4
    clips = benchmark_clips(args.videos, args.frames)
    runs = [measure(clips, device, args.rounds, args.jpeg_dump) for device in devices]

    print(f"LSE of {args.videos} clips x {args.frames} frames (224x224 crops), batch {DEFAULT_BATCH_SIZE}")
    print(
        f"{'device':<28}{'clock':<6}{'tfbench s':>10}{'reference s':>12}{'limit s':>9}{'tfb/limit':>10}"
        f"{'ref/limit':>10}{'max |diff|':>11}"
    )
    for run in runs:
        for clock, suffix in (("wall", ""), ("cpu", "_cpu")):
            print(
                f"{run['device'][:27]:<28}{clock:<6}{run[f'tfbench{suffix}_s']:>10.2f}"
                f"{run[f'reference{suffix}_s']:>12.2f}{run[f'limit{suffix}_s']:>9.2f}"
                f"{run[f'tfbench_over_limit{suffix}']:>9.2f}x{run[f'reference_over_limit{suffix}']:>9.2f}x"
                f"{run['max_abs_diff']:>11.1e}"
            )
    result = {
        **runs[0],
        "runs": runs,
        "command": " ".join(["python -m benchmarks.lse", *(sys.argv[1:] if argv is None else argv)]),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
