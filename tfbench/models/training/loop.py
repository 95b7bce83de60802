"""The loop every stage shares: seeding, resume, step-keyed batches, validation, atomic checkpoints.

`train_stage` runs one stage into an output folder. A fresh start seeds torch, numpy and `random` with
`train.seed` before the networks are built (so their initialisation is fixed), loads the earlier stages'
checkpoints, writes `OUT/config.yaml` and validates once at step 0. A folder that already holds
`OUT/last.pt` is resumed instead: networks, optimisers, loss scalers, step, metrics history and the torch
random state come from the file, and the data sampler restarts at the saved step (its batches depend on the
step only, see `tfbench.models.training.data`), so on the CPU a run stopped at step k and resumed reaches
step n with the same parameters, bit for bit, as a run that never stopped. The earlier stages' checkpoints
are not read again on resume: the file holds their networks.

Validation runs every `train.val_interval` steps and at the last step; a checkpoint is written every
`train.checkpoint_interval` steps and at the last step, with `OUT/metrics.json` (the validation history)
beside it. `steps` is the step count to reach: stopping early with a small `steps` and running again with a
larger one continues the same run.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from tfbench.errors import TfbenchError
from tfbench.fileio import atomic_write_text
from tfbench.models.config import ModelConfig, config_to_dict
from tfbench.models.training.checkpoint import (
    CHECKPOINT_NAME,
    FORMAT,
    check_resumable,
    load_checkpoint,
    load_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from tfbench.models.training.data import StepBatchSampler, TrainData, make_loader
from tfbench.models.training.experts import Precision
from tfbench.models.training.generator_stages import GeneratorStage, SilentStage
from tfbench.models.training.stages import AVSyncNetStage, Stage

__all__ = ["STAGES", "StepCallback", "TrainResult", "seed_everything", "train_stage"]

STAGES: dict[str, type[Stage]] = {s.name: s for s in (AVSyncNetStage, SilentStage, GeneratorStage)}
"""The stages by name, in training order."""

StepCallback = Callable[[int, int, Mapping[str, float]], None]
"""progress(step, total steps, the step's losses and, after a validation, its metrics)."""


@dataclass
class TrainResult:
    """What a `train_stage` call did: where the checkpoint is, the step reached, the last validation."""

    stage: str
    checkpoint: Path
    step: int
    start_step: int
    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    train_losses: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    steps_per_second: float | None = None
    """Optimisation steps per second of this call, data loading included, validation and saving excluded."""


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's global generator and `random`."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _payload(
    stage: Stage,
    step: int,
    history: list[dict[str, float]],
    losses: Mapping[str, float],
    sources: Mapping[str, str],
    data: Mapping[str, object],
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "stage": stage.name,
        "config": config_to_dict(stage.config),
        "step": step,
        "metrics": {"latest": history[-1] if history else {}, "history": history, "train": dict(losses)},
        "models": {name: module.state_dict() for name, module in stage.modules.items()},
        "optimizers": {name: opt.state_dict() for name, opt in stage.optimizers.items()},
        "scalers": stage.precision.state_dict(),
        "rng": rng_state(),
        "sources": dict(sources),
        "data": dict(data),
    }


def _resume(stage: Stage, path: Path) -> tuple[int, list[dict[str, float]], dict[str, str], dict[str, float]]:
    """Load a stage's state from its checkpoint; returns (step, history, sources, last training losses)."""
    data = load_checkpoint(path, stage.name)
    if "optimizers" not in data:
        raise TfbenchError(f"{path} is an exported, inference-only checkpoint; it cannot be resumed")
    check_resumable(data, stage.config, path)
    for name, module in stage.modules.items():
        load_state(module, data["models"][name], str(path), name)
    for name, optimizer in stage.optimizers.items():
        optimizer.load_state_dict(data["optimizers"][name])
    stage.precision.load_state_dict(data.get("scalers", {}))
    set_rng_state(data["rng"])
    stage.resumed(data["sources"])
    metrics = data["metrics"]
    return int(data["step"]), list(metrics["history"]), dict(data["sources"]), dict(metrics.get("train", {}))


def _json_safe(data: Mapping[str, object]) -> dict[str, object]:
    safe: dict[str, object] = json.loads(json.dumps(data, default=str))
    return safe


def train_stage(
    stage_name: str,
    config: ModelConfig,
    data: TrainData,
    out: str | Path,
    *,
    device: str | torch.device = "cpu",
    sources: Mapping[str, Path | None] | None = None,
    overrides: dict[str, Path] | None = None,
    steps: int | None = None,
    num_workers: int | None = None,
    progress: StepCallback | None = None,
) -> TrainResult:
    """Train `stage_name` on `data` into folder `out` up to `steps` (default: the config's), resuming
    from `out/last.pt` when it exists. `sources` holds the earlier stages' checkpoints by name
    ("avsyncnet", "silent"); `overrides` are `--weights NAME=PATH` files (VGG19, Wav2Lip's expert)."""
    if stage_name not in STAGES:
        raise TfbenchError(f"unknown training stage {stage_name!r} (stages: {', '.join(STAGES)})")
    out, device = Path(out), torch.device(device)
    out.mkdir(parents=True, exist_ok=True)
    path = out / CHECKPOINT_NAME
    train = config.train
    seed_everything(train.seed)
    stage = STAGES[stage_name](config, device, Precision(device, train.amp), overrides)
    settings = stage.settings
    total = settings.steps if steps is None else steps
    if total < 0:
        raise TfbenchError(f"--steps must be >= 0, got {total}")
    dataset, size, val_batches = stage.datasets(data)
    description = _json_safe(data.description)
    losses: dict[str, float] = {}
    if path.is_file():
        start, history, used, losses = _resume(stage, path)
    else:
        used = stage.init_from(sources or {})
        start, history = 0, [{"step": 0, **stage.validate(val_batches)}]
        atomic_write_text(out / "config.yaml", yaml.safe_dump(config_to_dict(config), sort_keys=False))
    stage.train_mode()
    begun = time.perf_counter()
    busy = 0.0  # seconds spent in validation and saving, left out of the speed
    if start >= total:
        if not path.is_file():
            save_checkpoint(path, _payload(stage, start, history, losses, used, description))
    else:
        sampler = StepBatchSampler(size, settings.batch_size, train.seed, start, total)
        workers = train.num_workers if num_workers is None else num_workers
        loader = make_loader(dataset, sampler, workers, device)
        for step, batch in enumerate(loader, start=start + 1):
            losses = stage.train_step(batch)
            report: dict[str, float] = dict(losses)
            paused = time.perf_counter()
            if step % train.val_interval == 0 or step == total:
                history.append({"step": step, **stage.validate(val_batches)})
                report |= history[-1]
            if step % train.checkpoint_interval == 0 or step == total:
                save_checkpoint(path, _payload(stage, step, history, losses, used, description))
                atomic_write_text(out / "metrics.json", json.dumps(history, indent=1))
            busy += time.perf_counter() - paused
            if progress is not None:
                progress(step, total, report)
    seconds = time.perf_counter() - begun
    done = max(0, total - start)
    return TrainResult(
        stage=stage_name,
        checkpoint=path,
        step=max(start, total),
        start_step=start,
        metrics={k: v for k, v in history[-1].items() if k != "step"} if history else {},
        history=history,
        train_losses=losses,
        seconds=seconds,
        steps_per_second=done / (seconds - busy) if done and seconds > busy else None,
    )
