"""FID: tfbench's metric on the face crops of N videos, against `python -m pytorch_fid` and Inception's limit.

Run from the repository root: `python -m benchmarks.fid [--videos 4] [--frames 25] [--rounds 2] [--dims 2048]
[--precision fp32|bf16] [--threads N] [--device auto|cpu|cuda] [--json OUT]` (default OUT:
benchmarks/results/fid.json, or fid_bf16.json). Clocks and rounds: see benchmarks/_common.py.

Input: two sets of N synthetic LRS2-layout videos written by tfbench's generator (ground truth, seed 0, and
"generated": other identities and speech, seed 1), decoded and cut into 96 px face crops as `tfbench score
--detector none` cuts them (Wav2Lip's crop rule on the whole-frame box), once, before the timed routes: the
frames a run hands to the metrics. One random-weight FID InceptionV3 in the real file format, saved where
both tools look for it: torch hub's `$TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth`
(pytorch-fid through TORCH_HOME, tfbench through `--weights fid_inception=PATH`); nothing is downloaded.
- tfbench: `FID` built from the weights file (channels_last), updated clip by clip with the generated and
  ground-truth crops (uint8 -> [0, 1], pytorch-fid's resize inside the network, float64 sums of features
  and outer products): `tfbench_features_s`; then `compute` (mean, covariance, pytorch-fid's
  `calculate_frechet_distance`): `distance_s`;
- reference: the crops written as PNG files into two folders (`reference_png_s`), then `python -m pytorch_fid
  GT_DIR GEN_DIR --device D [--dims d]` as a subprocess with its other defaults (batch 50, DataLoader
  workers): Python and torch start-up, weights, PIL decode, forward, numpy statistics and the same distance;
  its CPU time counts;
- limit: InceptionV3's forward passes alone on the same batches (each clip's frames, at most 50 at a time),
  resized to 299 beforehand, channels_last and (first round only) contiguous; in `--precision`.
The Frechet distance, a scipy `sqrtm` of a dims x dims matrix, takes the same time in both routes however
many frames there are (20-60 s for 2048 on this shared 2-core CPU) and is not in the forward-only limit:
`tfbench_features_over_limit` compares tfbench's work before it with the limit, and
`tfbench_over_limit_plus_distance` the whole route with the limit plus that distance. `decode_s` is the
decode and crop of the input (untimed in the routes) and `decode_bound` says whether it takes longer than
the limit (a fast device would then wait for the CPU). Printed: the times, ratios and `max_abs_diff` =
|FID of tfbench - FID of pytorch-fid|; with `--precision bf16`, bf16's deviation from fp32.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from pytorch_fid.inception import InceptionV3

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
from tests.test_fid import random_fid_inception_state
from tfbench.data.faces import create, preset, process_frames
from tfbench.media import read_video
from tfbench.metrics.fid import DEFAULT_BATCH_SIZE, FID, INCEPTION_SIZE, build_fid_inception
from tfbench.metrics.precision import Precision, forward_precision

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"  # the file pytorch-fid's FID_WEIGHTS_URL names
Clips = dict[bool, list[torch.Tensor]]  # real (ground truth) or not -> each video's (T, 96, 96, 3) crops


@dataclass(frozen=True)
class Setup:
    """What every route of one measurement reads."""

    clips: Clips
    torch_home: Path
    work: Path
    device: torch.device
    dims: int
    precision: Precision

    @property
    def weights(self) -> Path:
        return self.torch_home / "hub" / "checkpoints" / WEIGHTS_NAME


def face_crops(videos: list[Path]) -> list[torch.Tensor]:
    """Each video decoded and cut into 96 px crops as `tfbench score --detector none` cuts it."""
    settings = preset("wav2lip", detector="none", coverage="full", min_track=0)
    detector = create(settings)
    return [torch.from_numpy(process_frames(read_video(v).frames, settings, detector).crops) for v in videos]


def tfbench_route(setup: Setup) -> tuple[float, float, float]:
    """The FID metric from its weights file, fed every clip of both sides, computed: (FID, seconds up to the
    accumulated statistics, seconds of `compute`)."""
    start = time.perf_counter()
    metric = FID(
        dims=setup.dims, weights_overrides={"fid_inception": setup.weights}, precision=setup.precision
    ).to(setup.device)
    for generated, truth in zip(setup.clips[False], setup.clips[True], strict=True):
        metric.update(generated, real=False)
        metric.update(truth, real=True)
    features = time.perf_counter() - start
    value = float(metric.compute()["fid"])
    return value, features, time.perf_counter() - start - features


def reference_route(setup: Setup) -> tuple[float, float]:
    """PNG files of both sides, then pytorch-fid's command line on the two folders: (the FID it prints,
    seconds of the PNG files)."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ref-", dir=setup.work) as tmp:
        folders = []
        for real, name in ((True, "gt"), (False, "generated")):
            folder = Path(tmp) / name
            folder.mkdir()
            for i, frame in enumerate(torch.cat(setup.clips[real]).numpy()):
                Image.fromarray(frame).save(folder / f"{i:06d}.png")
            folders.append(str(folder))
        png = time.perf_counter() - start
        command = [sys.executable, "-m", "pytorch_fid", *folders, "--device", setup.device.type]
        command += ["--dims", str(setup.dims)]
        env = {**os.environ, "TORCH_HOME": str(setup.torch_home)}
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    found = re.search(r"FID:\s+(\S+)", done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    return float(found.group(1)), png


def limit_batches(setup: Setup, layout: torch.memory_format) -> list[torch.Tensor]:
    """The batches tfbench runs (each clip's frames, 50 at a time), in [0, 1] and resized to 299 beforehand
    as pytorch-fid's network resizes its input, on the device in `layout`."""
    batches = []
    for clip in [*setup.clips[True], *setup.clips[False]]:
        for chunk in clip.split(DEFAULT_BATCH_SIZE):
            x = chunk.permute(0, 3, 1, 2).float().div(255)
            resized = F.interpolate(x, size=(INCEPTION_SIZE,) * 2, mode="bilinear", align_corners=False)
            batches.append(resized.to(setup.device).contiguous(memory_format=layout))
    return batches


def limit_route(model: InceptionV3, batches: list[torch.Tensor], precision: Precision) -> None:
    """The network alone (built without its input resize) on the pre-resized batches."""
    with torch.no_grad(), forward_precision(next(model.parameters()).device, precision):
        for batch in batches:
            model(batch)


def measure(setup: Setup, rounds: int, decode_s: float) -> dict[str, Any]:
    """Every route on one device (best of `rounds`, interleaved), their ratios and the FID difference."""
    state = torch.load(setup.weights, map_location="cpu", weights_only=True)
    bare = build_fid_inception(state, setup.dims, resize="clean").to(setup.device)
    limits = {
        "channels_last": (copy.deepcopy(bare).to(memory_format=torch.channels_last), torch.channels_last),
        "contiguous_format": (bare, torch.contiguous_format),
    }
    batches = {name: limit_batches(setup, layout) for name, (_, layout) in limits.items()}
    for name, (model, _) in limits.items():  # first-call set-up (oneDNN / cuDNN plans), untimed
        limit_route(model, batches[name][:1], setup.precision)
    routes: dict[str, Callable[[], Any]] = {
        "tfbench": partial(tfbench_route, setup),
        "reference": partial(reference_route, setup),
        **{
            name: partial(limit_route, model, batches[name], setup.precision)
            for name, (model, _) in limits.items()
        },
    }
    times, results = run_rounds(routes, rounds, setup.device, once=("contiguous_format",))
    frames = sum(len(clip) for side in setup.clips.values() for clip in side)
    result = summarize(times, frames, list(limits))
    ours, reference = results["tfbench"][-1][0], results["reference"][-1][0]
    features = min(features for _, features, _ in results["tfbench"])
    distance = min(distance for _, _, distance in results["tfbench"])
    return {
        **machine(setup.device),
        "videos": len(setup.clips[True]),
        "size": int(setup.clips[True][0].shape[1]),
        "dims": setup.dims,
        "precision": setup.precision,
        "batch_size": DEFAULT_BATCH_SIZE,
        "rounds": rounds,
        **result,
        "fid_tfbench": ours,
        "fid_reference": reference,
        "max_abs_diff": abs(ours - reference),
        "rel_diff": abs(ours - reference) / abs(reference),
        "tfbench_features_s": features,
        "tfbench_features_over_limit": features / result["limit_s"],
        "distance_s": distance,
        "tfbench_over_limit_plus_distance": result["tfbench_s"] / (result["limit_s"] + distance),
        "reference_png_s": min(png for _, png in results["reference"]),
        "decode_s": decode_s,
        "decode_bound": decode_s > result["limit_s"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parse = parser("python -m benchmarks.fid", __doc__, videos=4, frames=25, rounds=2)
    parse.add_argument("--dims", type=int, default=2048, choices=list(InceptionV3.BLOCK_INDEX_BY_DIM))
    args = parse.parse_args(argv)
    set_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="tfbench-fid-bench-") as tmp:
        work = Path(tmp)
        truth = synthetic_videos(work / "gt", args.videos, args.frames, seed=0)
        generated = synthetic_videos(work / "generated", args.videos, args.frames, seed=1)
        decode, clips = timed(
            lambda: {True: face_crops(truth), False: face_crops(generated)}, torch.device("cpu")
        )
        setups = [
            Setup(clips, work / "torch_home", work, d, args.dims, args.precision)
            for d in devices(args.device)
        ]
        setups[0].weights.parent.mkdir(parents=True)
        torch.save(random_fid_inception_state(), setups[0].weights)
        runs = [measure(setup, args.rounds, decode["wall"]) for setup in setups]
    title = (
        f"FID of {args.videos} + {args.videos} videos x {args.frames} frames (96x96 crops), "
        f"dims {args.dims}, {args.precision}, batch {DEFAULT_BATCH_SIZE}"
    )
    print_table(title, runs, "|FID diff|")
    for run in runs:
        print(
            f"{run['device'][:27]:<28}FID tfbench {run['fid_tfbench']:.6f}, "
            f"pytorch-fid {run['fid_reference']:.6f}; tfbench up to the statistics "
            f"{run['tfbench_features_s']:.2f} s = {run['tfbench_features_over_limit']:.2f}x limit, then the "
            f"distance {run['distance_s']:.2f} s; tfbench / (limit + distance) "
            f"{run['tfbench_over_limit_plus_distance']:.2f}x; decode + crop {run['decode_s']:.2f} s "
            f"(decode-bound: {run['decode_bound']})"
        )
    return write_result(
        args.json or default_json("fid", args.precision), runs, "python -m benchmarks.fid", argv
    )


if __name__ == "__main__":
    main()
