"""What the speed benchmarks share: the command line, synthetic input videos, the clocks, interleaved rounds,
the summary of the timings (best round, ratios, frames per second), the printed table and the JSON record.

Every benchmark times three routes over the same input: `tfbench`, `reference` (a faithful re-creation of
the reference implementation's route) and the compute limit (the network's forward passes alone, in one or
more memory layouts; the fastest counts). Each route runs `--rounds` times, the order alternating between
rounds so that a drifting load favours none, and its best round counts, on two clocks: wall time, and the
CPU time of this process plus the subprocesses it waited for (with `--threads 1`, the number other jobs on
a shared CPU move least). The 1-minute load average is recorded beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from tfbench.data.synthetic import SynthConfig, write_dataset
from tfbench.fileio import atomic_write_text
from tfbench.metrics.precision import PRECISIONS

RESULTS = Path(__file__).parent / "results"
CLOCKS = (("wall", ""), ("cpu", "_cpu"))
"""Each clock and the suffix of its keys in the JSON record (`tfbench_s`, `tfbench_cpu_s`, ...)."""

Times = dict[str, dict[str, list[float]]]
"""route -> clock -> the seconds of each round it ran."""


def cpu_name() -> str:
    """The CPU model and core count, for the record (the same CPU may be shared with other jobs)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model} x{os.cpu_count()}"


def machine(device: torch.device) -> dict[str, Any]:
    """Where a measurement ran: the device, torch's intra-op threads and the 1-minute load average."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu: {cpu_name()}"
    return {"device": name, "torch_threads": torch.get_num_threads(), "load_average_1min": os.getloadavg()[0]}


def parser(prog: str, doc: str | None, videos: int, frames: int, rounds: int) -> argparse.ArgumentParser:
    """The options every benchmark takes, with its own defaults for the input size and the rounds."""
    parse = argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n\n")[0])
    parse.add_argument("--videos", type=int, default=videos, help=f"synthetic videos (default {videos})")
    parse.add_argument("--frames", type=int, default=frames, help=f"frames per video (default {frames})")
    parse.add_argument("--rounds", type=int, default=rounds, help="interleaved repetitions; the best counts")
    parse.add_argument("--precision", choices=PRECISIONS, default="fp32", help="tfbench's and the limit's")
    parse.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: CPU (+CUDA)")
    parse.add_argument("--threads", type=int, default=None, help="torch and BLAS threads (default: torch's)")
    parse.add_argument(
        "--json", type=Path, default=None, help="output (default benchmarks/results/NAME.json)"
    )
    return parse


def default_json(name: str, precision: str) -> Path:
    """benchmarks/results/NAME.json for fp32, NAME_bf16.json for bf16: the two never overwrite each other."""
    return RESULTS / (f"{name}.json" if precision == "fp32" else f"{name}_{precision}.json")


def set_threads(threads: int | None) -> None:
    """Give torch, this process's BLAS and its subprocesses' `threads` threads (None: the defaults)."""
    if not threads:
        return
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


def devices(choice: str) -> list[torch.device]:
    """The devices to measure on: `auto` is the CPU, and CUDA too where there is one."""
    found = [torch.device("cpu")] if choice in ("auto", "cpu") else []
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        found.append(torch.device("cuda"))
        torch.backends.cudnn.allow_tf32 = False  # full float32, so that the routes can agree to 1e-4
        torch.backends.cuda.matmul.allow_tf32 = False
    return found


def synthetic_videos(folder: Path, videos: int, frames: int, seed: int = 0) -> list[Path]:
    """`videos` in-sync synthetic LRS2-layout mp4 files (160x160 faces, 16 kHz audio) of `frames` frames each,
    written by tfbench's generator under `folder`; their paths, sorted."""
    config = SynthConfig(
        "lrs2", speakers=videos, clips=1, seconds=frames / 25, seed=seed, offset_fraction=0.0
    )
    write_dataset(folder, config)
    return sorted(folder.rglob("*.mp4"))


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[dict[str, float], Any]:
    """Wall-clock and CPU seconds of `fn()` (synchronising CUDA), and its result. The CPU time is that of
    this process plus the subprocesses it waited for meanwhile (`os.times`)."""

    def cpu() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall, used = time.perf_counter(), cpu()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return {"wall": time.perf_counter() - wall, "cpu": cpu() - used}, result


def run_rounds(
    routes: Mapping[str, Callable[[], Any]], rounds: int, device: torch.device, once: Collection[str] = ()
) -> tuple[Times, dict[str, list[Any]]]:
    """Every route `rounds` times (those in `once` in the first round only), in an order that alternates
    between rounds. Returns the seconds of each run and each route's results, in round order."""
    times: Times = {}
    results: dict[str, list[Any]] = {}
    for i in range(rounds):
        for name in list(routes) if i % 2 == 0 else list(routes)[::-1]:
            if i == 0 or name not in once:
                seconds, result = timed(routes[name], device)
                results.setdefault(name, []).append(result)
                for clock, value in seconds.items():
                    times.setdefault(name, {}).setdefault(clock, []).append(value)
    return times, results


def summarize(times: Times, frames: int, limits: Sequence[str]) -> dict[str, Any]:
    """The JSON keys of a measurement, per clock: the best round of `tfbench`, `reference` and the fastest of
    the `limits` routes (`limit_s`, with its layout and every layout's time), their ratios and frames/s."""
    result: dict[str, Any] = {"frames": frames, "all_rounds_s": times}
    for clock, suffix in CLOCKS:
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
            f"reference_over_tfbench{suffix}": ref / tfb,
            f"frames_per_s{suffix}": {
                "tfbench": frames / tfb,
                "reference": frames / ref,
                "limit": frames / lim,
            },
        }
    return result


def print_table(title: str, runs: Sequence[Mapping[str, Any]], diff_label: str) -> None:
    """One line per device and clock: the three times, the three ratios and the largest difference."""
    print(title)
    print(
        f"{'device':<28}{'clock':<6}{'tfbench s':>10}{'reference s':>12}{'limit s':>9}{'tfb/limit':>10}"
        f"{'ref/limit':>10}{'ref/tfb':>9}{diff_label:>13}"
    )
    for run in runs:
        for clock, suffix in CLOCKS:
            print(
                f"{run['device'][:27]:<28}{clock:<6}{run[f'tfbench{suffix}_s']:>10.2f}"
                f"{run[f'reference{suffix}_s']:>12.2f}{run[f'limit{suffix}_s']:>9.2f}"
                f"{run[f'tfbench_over_limit{suffix}']:>9.2f}x{run[f'reference_over_limit{suffix}']:>9.2f}x"
                f"{run[f'reference_over_tfbench{suffix}']:>8.2f}x{run['max_abs_diff']:>13.1e}"
            )


def write_result(
    path: Path, runs: Sequence[Mapping[str, Any]], prog: str, argv: list[str] | None
) -> dict[str, Any]:
    """The JSON record (the first device's keys at the top, every device under "runs", and the command),
    written atomically; returned."""
    command = " ".join([prog, *(sys.argv[1:] if argv is None else argv)])
    result = {**runs[0], "runs": list(runs), "command": command}
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return result
