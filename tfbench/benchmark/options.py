"""The settings of one run, and the record of them that config.yaml keeps."""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfbench import __version__, weights
from tfbench.benchmark.distributed import DistributedContext
from tfbench.benchmark.results import find_resumable
from tfbench.data.loading import LoadProtocol
from tfbench.errors import WeightsError
from tfbench.metrics import suite as _suite  # noqa: F401  (registers the built-in metrics)
from tfbench.metrics.clip import refuse_unsupported_precision

DEFAULT_METRICS = ("lse", "ssim", "psnr", "lpips", "fid")


@dataclass(frozen=True)
class RunOptions:
    """What `tfbench run` was asked to do. `out` defaults to runs/<model>-<dataset>-<split>-<timestamp>.

    `precision` is that of the metrics' networks (fp32, or bf16 for the metrics that accept it): a metric
    that cannot run in it is refused here, before anything is generated.
    """

    model: str
    dataset: str
    root: Path
    split: str = "test"
    protocol: LoadProtocol = "reconstruction"
    metrics: tuple[str, ...] = DEFAULT_METRICS
    out: Path | None = None
    limit: int | None = None
    detector: str = "s3fd"
    face_preset: str = "wav2lip"
    overrides: dict[str, Path] = field(default_factory=dict)
    model_options: dict[str, str] = field(default_factory=dict)  # KEY=VALUE strings for the model's load
    workers: int = 2
    fid_resize: str = "pytorch_fid"
    lse_protocol: str = "tfbench"
    ssim_variant: str = "skimage"
    precision: str = "fp32"
    seed: int = 0
    started: str = field(default_factory=lambda: dt.datetime.now().strftime("%Y%m%d-%H%M%S"))

    def __post_init__(self) -> None:
        refuse_unsupported_precision(self.metrics, self.precision)

    @property
    def run_prefix(self) -> str:
        return f"{self.model}-{self.dataset}-{self.split}-"

    def out_dir(self, record: dict[str, Any]) -> Path:
        """--out, else the newest runs/<model>-<dataset>-<split>-* folder with the same settings (a rerun
        resumes it), else a new timestamped folder."""
        if self.out is not None:
            return Path(self.out)
        runs = Path("runs")
        return find_resumable(runs, self.run_prefix, record) or runs / f"{self.run_prefix}{self.started}"

    def config_record(
        self,
        dist: DistributedContext,
        metric_settings: dict[str, str],
        weight_names: list[str],
        model_options: dict[str, str] | None = None,
        model_label: str = "",
    ) -> dict[str, Any]:
        """Everything that identifies the run (compared on resume) plus what a reader needs to trust it.

        `model_options` (every option of the model, defaults included) is kept only for a model that has
        options, so run folders of option-less models written before options existed still resume; likewise
        `model_label` (what the model's weights are, e.g. "synthetic-data demo weights") only where it is set.
        """
        return {
            "model": self.model,
            **({"model_options": dict(model_options)} if model_options else {}),
            **({"model_label": model_label} if model_label else {}),
            "dataset": self.dataset,
            "root": str(Path(self.root).resolve()),
            "split": self.split,
            "protocol": self.protocol,
            "metrics": list(self.metrics),
            "detector": self.detector,
            "face_preset": self.face_preset,
            "fid_resize": self.fid_resize,
            "lse_protocol": self.lse_protocol,
            "ssim_variant": self.ssim_variant,
            "precision": self.precision,
            "seed": self.seed,
            "weights": {name: _weight_record(name, self.overrides) for name in sorted(set(weight_names))},
            "metric_settings": metric_settings,
            "world_size": dist.world_size,
            "limit": self.limit,
            "command": " ".join(sys.argv),
            "started": self.started,
            "tfbench_version": __version__,
            "git_commit": _git_commit(),
            "host": platform.node(),
            "device": dist.device,
        }


def _weight_record(name: str, overrides: dict[str, Path]) -> dict[str, str | None]:
    """Path and sha256 of a weight file the run used (None where it is missing: the run will say so)."""
    try:
        path = weights.resolve(name, overrides)
    except WeightsError:  # reported by the loader that needs the file, with the fetch command
        return {"path": None, "sha256": None}
    return {"path": str(path), "sha256": weights.sha256_file(path)}


def _git_commit() -> str | None:
    """The commit of the tfbench checkout, where it is one (an installed wheel has none)."""
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None
