"""FID feature extraction: tfbench against pytorch-fid's own route and against the network's compute limit.

Run from the repository root: `python -m benchmarks.fid [--frames 50] [--rounds 2] [--threads N] [--json OUT]`
(default OUT: benchmarks/results/fid.json). The CPU here is shared: each timing is the best of `--rounds`
interleaved repetitions, on two clocks: wall time and the process's CPU time (with `--threads 1`, the number
other jobs on the machine do not move); the 1-minute load average is recorded beside them.

Three timings over the same N face crops (uint8 RGB, 96x96 by default, as decoded frames sit in memory), with
one random-weight FID InceptionV3 (the timings do not depend on the weights, and nothing is downloaded):
- tfbench: the runner's route: `fid_features` of the frames (channels_last, FID's default), then
  `FID.update(features, real=True)`: conversion, pytorch-fid's bilinear resize inside the network,
  forward, and the float64 sum / outer-product accumulation;
- reference: pytorch-fid's route: the frames dumped as PNG files (pytorch-fid reads image files), then its
  `get_activations` (PIL decode, ToTensor, DataLoader batches of 50, forward, numpy copy) and numpy's mean
  and covariance, as `calculate_activation_statistics` does; `num_workers=0` (the CPU is shared);
- limit: the network's forward pass alone on inputs already resized to 299 and stacked, in the same batch
  size, in the faster of the two memory layouts measured here (channels_last; contiguous is timed once).
The largest absolute difference between tfbench's and the reference's features is printed beside them
(channels_last against pytorch-fid's contiguous layout: about 1e-6).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from pytorch_fid import inception as pytorch_fid_inception
from pytorch_fid.fid_score import get_activations

from tfbench.metrics.fid import DEFAULT_BATCH_SIZE, FID, INCEPTION_SIZE, build_fid_inception, fid_features

RESULTS = Path(__file__).parent / "results" / "fid.json"


def random_fid_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state_dict in the layout of pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`."""
    torch.manual_seed(seed)
    with (
        mock.patch.object(torchvision.models.inception.Inception3, "load_state_dict", lambda *a, **k: None),
        mock.patch.object(pytorch_fid_inception, "load_state_dict_from_url", lambda *a, **k: {}),
    ):
        net = pytorch_fid_inception.fid_inception_v3()
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):  # He init: features of a realistic size
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return net.state_dict()


def face_crops(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """(n, size, size, 3) uint8 crops of a photograph drifting over it, plus noise."""
    from skimage import data as skdata

    image = np.asarray(Image.fromarray(skdata.astronaut()).resize((512 + n, 512 + n)))
    rng = np.random.default_rng(seed)
    crops = np.stack([image[i : i + size, 2 * i % 256 : 2 * i % 256 + size] for i in range(n)])
    return torch.from_numpy((crops + rng.integers(-8, 9, crops.shape)).clip(0, 255).astype(np.uint8))


def cpu_name() -> str:
    """The CPU model and core count, for the record (the same CPU is shared with other jobs here)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"cpu: {model} x{os.cpu_count()}"


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[dict[str, float], Any]:
    """Wall-clock and process CPU seconds of `fn()` (synchronising CUDA), and its result.

    On a shared CPU, the CPU time of a one-thread run (`--threads 1`) is the number that other jobs do not
    move; with several threads it also counts threads waiting for each other.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}, result


def reference_route(model: torch.nn.Module, frames: torch.Tensor, folder: Path, device: torch.device) -> Any:
    """pytorch-fid's route from frames in memory: PNG files, `get_activations`, numpy mean and covariance."""
    png = time.perf_counter()
    files = []
    for i, frame in enumerate(frames.numpy()):
        files.append(folder / f"{i:06d}.png")
        Image.fromarray(frame).save(files[-1])
    png = time.perf_counter() - png
    activations = get_activations(files, model, DEFAULT_BATCH_SIZE, 2048, str(device), num_workers=0)
    return png, activations, np.mean(activations, axis=0), np.cov(activations, rowvar=False)


def limit_route(model: torch.nn.Module, batches: list[torch.Tensor]) -> None:
    """The network alone on pre-resized, pre-stacked batches."""
    with torch.no_grad():
        for batch in batches:
            model(batch)


def tfbench_route(metric: FID, frames: torch.Tensor) -> torch.Tensor:
    """What the runner does: features of the frames in memory, then the metric's float64 sums."""
    metric.reset()
    features = fid_features(metric.model, frames, metric.resize, metric.batch_size)
    metric.update(features, real=True)
    return features


def measure(
    state: dict[str, torch.Tensor], frames: torch.Tensor, device: torch.device, rounds: int
) -> dict[str, Any]:
    """The three timings on one device (the best of `rounds`, interleaved), and the routes' differences."""
    metric = FID(model=build_fid_inception(state).to(device)).to(device)  # channels_last, in place
    reference = build_fid_inception(state).to(device)  # pytorch-fid's contiguous layout
    x = frames.permute(0, 3, 1, 2).contiguous().float().div(255)
    resized = F.interpolate(x, size=(INCEPTION_SIZE,) * 2, mode="bilinear", align_corners=False)
    limits = {}  # the bare network (resize_input=False) and its pre-resized batches, per memory layout
    for fmt in (torch.contiguous_format, torch.channels_last):
        bare = build_fid_inception(state, resize="clean").to(device, memory_format=fmt)
        batches = [b.to(device).contiguous(memory_format=fmt) for b in resized.split(DEFAULT_BATCH_SIZE)]
        limits[str(fmt).removeprefix("torch.")] = (bare, batches)
    for model in (metric.model, reference, *(bare for bare, _ in limits.values())):
        fid_features(model, frames[:8], "clean")  # first-call set-up (oneDNN / cuDNN plans), untimed

    times: dict[str, dict[str, list[float]]] = {}
    last: dict[str, Any] = {}  # each route's latest result
    with tempfile.TemporaryDirectory(prefix="tfbench-fid-bench-") as tmp:
        routes: dict[str, Callable[[], Any]] = {
            "tfbench": lambda: tfbench_route(metric, frames),
            "reference": lambda: reference_route(reference, frames, Path(tmp), device),
            **{name: partial(limit_route, bare, batches) for name, (bare, batches) in limits.items()},
        }
        for i in range(rounds):  # the order alternates, so that a drifting load favours no route
            for name in list(routes) if i % 2 == 0 else list(routes)[::-1]:
                if i == 0 or name != "contiguous_format":  # the slower layout is timed once
                    seconds, last[name] = timed(routes[name], device)
                    for clock, value in seconds.items():
                        times.setdefault(name, {}).setdefault(clock, []).append(value)
    features, (png_s, activations, mu_ref, sigma_ref) = last["tfbench"], last["reference"]
    mu, sigma = metric.stats(real=True).mean_cov()
    n = frames.shape[0]
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0],
        "frames": n,
        "size": int(frames.shape[1]),
        "batch_size": DEFAULT_BATCH_SIZE,
        "rounds": rounds,
        "tfbench_layout": "channels_last",
        "reference_png_s": png_s,
        "all_rounds_s": times,
        "max_abs_diff": float(np.abs(features.cpu().double().numpy() - activations).max()),
        "max_abs_diff_mu": float(np.abs(mu - mu_ref).max()),
        "max_abs_diff_sigma": float(np.abs(sigma - sigma_ref).max()),
    }
    for clock, suffix in (("wall", ""), ("cpu", "_cpu")):  # the best round of each route
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
            f"frames_per_s{suffix}": {"tfbench": n / tfb, "reference": n / ref, "limit": n / lim},
        }
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fid", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=50, help="face crops (default 50: one batch)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions; the best counts")
    parser.add_argument("--size", type=int, default=96, help="crop side in pixels (default 96, Wav2Lip's)")
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
    state, frames = random_fid_inception_state(), face_crops(args.frames, args.size)
    runs = [measure(state, frames, device, args.rounds) for device in devices]

    print(f"FID features of {args.frames} crops of {args.size}x{args.size}, batch {DEFAULT_BATCH_SIZE}")
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
        "command": " ".join(["python -m benchmarks.fid", *(sys.argv[1:] if argv is None else argv)]),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
