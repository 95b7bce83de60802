"""Peak memory of `tfbench run` against the number of videos: a split of N clips against one of 4N clips.

Run from the repository root: `python -m benchmarks.run_memory [--clips 3] [--seconds 2] [--json OUT]`
(default OUT: benchmarks/results/run_memory.json).

Two synthetic LRS2-layout splits (160x160, 25 fps, the same clip length and seed) of N and 4N clips are
written to a temporary folder; then `python -m tfbench run --model static --dataset synthetic --metrics
psnr,ssim --detector none` runs on each, every run in a fresh subprocess with its own empty `TFBENCH_HOME` (a
cold crop cache, nothing downloaded), so each peak belongs to one run alone. The peak resident set size of a
run is the `ru_maxrss` that `os.wait4` returns for its process (Linux: the larger of its own peak and that of
any subprocess it waited for; `resource.getrusage(RUSAGE_CHILDREN)` would be the maximum over *all* children
so far, which cannot separate the runs). Runs:
- import: a process that only imports torch and the runner, and exits (the floor every run starts from);
- N and 4N clips with the default `--workers` (2: the bounded prefetch queue holds up to 3 prepared samples);
- 4N clips with `--workers 1` (at most 2 in flight): the difference to the 4N default run is what the
  prefetch costs in memory.
The issue's target (issue 7) is that the 4N run's peak stays within 10% of the N run's.
Per-video wall time is the run's wall time (process start to exit) over its videos, and, from the results
rows, the mean `seconds` of one sample's generate + write + score (no start-up, no decode).
The CPU here is shared with other jobs: the wall times move with the load; the memory figures do not, but
vary by some 20 MiB from run to run (allocator and thread-timing noise), more than one prepared 2 s sample
holds (about 5 MiB of frames and crops).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks._common import cpu_name
from tfbench.benchmark.options import RunOptions
from tfbench.benchmark.results import RunStore
from tfbench.data.synthetic import SynthConfig, write_dataset
from tfbench.fileio import atomic_write_text

RESULTS = Path(__file__).parent / "results" / "run_memory.json"
TARGET = 0.10  # issue 7: the 4N run's peak within 10% of the N run's
DEFAULT_WORKERS = RunOptions(model="", dataset="", root=Path()).workers  # `tfbench run --workers` default
IMPORT_ONLY = "import torch, tfbench.cli, tfbench.benchmark.runner"


def child(argv: list[str], home: Path) -> dict[str, Any]:
    """Run `argv` in a fresh process with TFBENCH_HOME=`home`; its peak RSS (MiB), wall time and output."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TFBENCH_HOME": str(home), "TFBENCH_OFFLINE": "1"}
    started = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
        wall = time.perf_counter() - started
        log.seek(0)
        output = log.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}:\n{output[-4000:]}")
    # ru_maxrss is in KiB on Linux, bytes on macOS
    kib = usage.ru_maxrss / 1024 if sys.platform == "darwin" else usage.ru_maxrss
    return {"peak_rss_mib": kib / 1024, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime}


def tfbench_run(root: Path, out: Path, home: Path, workers: int, n_videos: int) -> dict[str, Any]:
    """One `tfbench run` of the static model with PSNR and SSIM in a fresh process, checked and measured."""
    argv = [
        sys.executable, "-m", "tfbench", "run", "--model", "static", "--dataset", "synthetic",
        "--root", str(root), "--metrics", "psnr,ssim", "--detector", "none", "--out", str(out),
        "--workers", str(workers),
    ]  # fmt: skip
    result = child(argv, home)
    rows = RunStore(out).rows()
    ok = rows[rows["status"] == "ok"]
    if len(ok) != n_videos:
        raise RuntimeError(f"{out}: {len(ok)} ok rows of {len(rows)}, expected {n_videos}")
    return {
        **result,
        "videos": n_videos,
        "workers": workers,
        "frames_per_video": int(ok["n_frames"].iloc[0]),
        "wall_s_per_video": result["wall_s"] / n_videos,
        "sample_s_mean": float(ok["seconds"].mean()),
        "command": " ".join(["python", *argv[1:]]),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run_memory", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--clips", type=int, default=3, help="N: clips of the small split (default 3)")
    parser.add_argument("--factor", type=int, default=4, help="the large split has factor x N clips (4)")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of every clip (default 2 s)")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"output (default {RESULTS})")
    args = parser.parse_args(argv)
    small_n, large_n = args.clips, args.factor * args.clips

    with tempfile.TemporaryDirectory(prefix="tfbench-run-memory-") as tmp:
        work = Path(tmp)
        roots = {}
        for n in (small_n, large_n):
            roots[n] = work / f"synthetic-{n}"
            write_dataset(
                roots[n], SynthConfig(layout="lrs2", speakers=1, clips=n, seconds=args.seconds, seed=3)
            )
        runs: dict[str, dict[str, Any]] = {}
        runs["import"] = {**child([sys.executable, "-c", IMPORT_ONLY], work / "home-import"), "videos": 0}
        plan = [
            (f"N={small_n}", small_n, DEFAULT_WORKERS),
            (f"4N={large_n}", large_n, DEFAULT_WORKERS),
            (f"4N={large_n} workers=1", large_n, 1),
        ]
        for name, n, workers in plan:
            tag = name.replace(" ", "-").replace("=", "")
            runs[name] = tfbench_run(roots[n], work / f"run-{tag}", work / f"home-{tag}", workers, n)

    small, large, single = (runs[name] for name, _, _ in plan)
    floor = runs["import"]["peak_rss_mib"]
    ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
    print(
        f"tfbench run --model static --metrics psnr,ssim --detector none: synthetic LRS2 layout (160x160), "
        f"{args.seconds:g} s clips; peak RSS per run (fresh process)"
    )
    print(f"{'run':<22}{'videos':>7}{'workers':>8}{'peak RSS MiB':>13}{'over import':>12}{'wall s':>8}"
          f"{'s/video':>8}{'sample s':>9}")  # fmt: skip
    for name, run in runs.items():
        per_video = f"{run['wall_s_per_video']:>8.2f}{run['sample_s_mean']:>9.3f}" if run["videos"] else ""
        print(
            f"{name:<22}{run['videos']:>7}{run.get('workers', ''):>8}{run['peak_rss_mib']:>13.1f}"
            f"{run['peak_rss_mib'] - floor:>12.1f}{run['wall_s']:>8.1f}{per_video}"
        )
    within = abs(ratio - 1.0) <= TARGET
    prefetch = large["peak_rss_mib"] - single["peak_rss_mib"]
    print(f"4N / N peak RSS: {ratio:.3f} ({'within' if within else 'NOT within'} {TARGET:.0%})")
    print(f"prefetch cost (workers={DEFAULT_WORKERS} vs 1, 4N): {prefetch:+.1f} MiB")

    result = {
        "machine": {
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
        },
        "clip_seconds": args.seconds,
        "layout": "lrs2",
        "small_videos": small_n,
        "large_videos": large_n,
        "default_workers": DEFAULT_WORKERS,
        "peak_rss_mib": {name: run["peak_rss_mib"] for name, run in runs.items()},
        "ratio_large_over_small": ratio,
        "target": TARGET,
        "within_target": within,
        "prefetch_cost_mib": prefetch,
        "runs": runs,
        "command": " ".join(["python -m benchmarks.run_memory", *(sys.argv[1:] if argv is None else argv)]),
    }
    atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
