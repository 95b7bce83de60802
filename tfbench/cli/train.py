"""`tfbench train avsyncnet|silent|generator`: the paper's three training stages, in that order; `tfbench
train export`: an inference-only, labelled copy of a stage's checkpoint (how the demo weights were made)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tfbench.cli.app import app, console, options, progress, resolve_device

if TYPE_CHECKING:
    from tfbench.models.training.loop import TrainResult

train_app = typer.Typer(no_args_is_help=True)
app.add_typer(
    train_app,
    name="train",
    help="Train the paper's networks: avsyncnet, then silent (G_S), then generator (G_L).",
)

Dataset = Annotated[str, typer.Option(help="Dataset name: lrs2, lrs3, lrw, hdtf, folder, synthetic.")]
Root = Annotated[Path, typer.Option(help="Dataset root folder.")]
Out = Annotated[Path, typer.Option(help="Output folder; a folder holding last.pt is resumed.")]
Split = Annotated[str, typer.Option(help="Split to train on.")]
ValSplit = Annotated[
    str | None, typer.Option(help="Split to validate on (default: hold out train.val_fraction of the clips).")
]
Config = Annotated[str, typer.Option(help="Model config: tiny, paper, or a YAML file.")]
Steps = Annotated[int | None, typer.Option(help="Step count to reach (default: the config's).")]
Weights = Annotated[list[str] | None, typer.Option("--weights", help="NAME=PATH, repeatable.")]
Detector = Annotated[str, typer.Option(help="Face detector for the crops: s3fd, s3fd_fan, dlib or none.")]
Limit = Annotated[int | None, typer.Option(help="Only the first N clips of each split (sorted by id).")]
Workers = Annotated[int | None, typer.Option(help="DataLoader workers (default: the config's).")]
AVSyncNetPath = Annotated[Path | None, typer.Option("--avsyncnet", help="Checkpoint of `train avsyncnet`.")]
SilentPath = Annotated[Path | None, typer.Option("--silent", help="Checkpoint of `train silent` (G_S).")]


@dataclass(frozen=True)
class _Options:
    """The options every stage takes (see the commands' help)."""

    dataset: str
    root: Path
    out: Path
    split: str
    val_split: str | None
    config: str
    steps: int | None
    weights: list[str] | None
    detector: str
    limit: int | None
    workers: int | None


def _train(stage: str, opts: _Options, sources: dict[str, Path | None]) -> TrainResult:
    """Prepare the data (face crops through the cache) and run one stage with a progress bar."""
    from tfbench.data.crop_cache import CropCache
    from tfbench.data.faces import preset
    from tfbench.models.config import load_config
    from tfbench.models.training import CHECKPOINT_NAME, STAGES, prepare_data, train_stage
    from tfbench.weights import parse_overrides

    model_config = load_config(opts.config)
    if not (opts.out / CHECKPOINT_NAME).is_file():  # a fresh run: check its inputs before cropping faces
        STAGES[stage].check_sources(model_config, sources)
    overrides = parse_overrides(opts.weights or [])
    device = resolve_device(options().device)
    settings = preset("wav2lip", detector=opts.detector, coverage="full", min_track=0)
    cache = CropCache(weights=overrides, device=device)
    with progress() as bar:
        task = bar.add_task(f"face crops of {opts.dataset}/{opts.split}", total=None)
        data = prepare_data(
            opts.dataset,
            opts.root,
            opts.split,
            settings,
            cache,
            seed=model_config.train.seed,
            val_split=opts.val_split,
            val_fraction=model_config.train.val_fraction,
            limit=opts.limit,
            capacity=model_config.train.cache_clips,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
        step_task = bar.add_task(f"train {stage}", total=None)

        def on_step(step: int, total: int, report: object) -> None:
            bar.update(step_task, completed=step, total=total)

        result = train_stage(
            stage,
            model_config,
            data,
            opts.out,
            device=device,
            sources=sources,
            overrides=overrides,
            steps=opts.steps,
            num_workers=opts.workers,
            progress=on_step,
        )
    skipped = f", {len(data.skipped)} clip(s) left out" if data.skipped else ""
    console.print(f"{len(data.train)} training and {len(data.val)} validation clip(s){skipped}")
    if result.start_step:
        console.print(f"resumed at step {result.start_step}")
    speed = f", {result.steps_per_second:.2f} steps/s" if result.steps_per_second else ""
    console.print(f"stage {stage}: step {result.step}{speed}")
    for name, value in result.metrics.items():
        console.print(f"  {name} = {value:.4f}")
    console.print(f"checkpoint: {result.checkpoint}")
    return result


@train_app.command("avsyncnet")
def avsyncnet(
    dataset: Dataset,
    root: Root,
    out: Out,
    split: Split = "train",
    val_split: ValSplit = None,
    config: Config = "paper",
    steps: Steps = None,
    weights: Weights = None,
    detector: Detector = "s3fd",
    limit: Limit = None,
    workers: Workers = None,
) -> None:
    """Train AVSyncNet (BCE on in-sync vs off-sync windows of the same clip)."""
    opts = _Options(dataset, root, out, split, val_split, config, steps, weights, detector, limit, workers)
    _train("avsyncnet", opts, {})


@train_app.command("silent")
def silent(
    dataset: Dataset,
    root: Root,
    out: Out,
    avsyncnet: AVSyncNetPath = None,
    split: Split = "train",
    val_split: ValSplit = None,
    config: Config = "paper",
    steps: Steps = None,
    weights: Weights = None,
    detector: Detector = "s3fd",
    limit: Limit = None,
    workers: Workers = None,
) -> None:
    """Train G_S, the silent-lip generator (GAN + L1 + perceptual on silent windows)."""
    opts = _Options(dataset, root, out, split, val_split, config, steps, weights, detector, limit, workers)
    _train("silent", opts, {"avsyncnet": avsyncnet})


@train_app.command("generator")
def generator(
    dataset: Dataset,
    root: Root,
    out: Out,
    avsyncnet: AVSyncNetPath = None,
    silent: SilentPath = None,
    split: Split = "train",
    val_split: ValSplit = None,
    config: Config = "paper",
    steps: Steps = None,
    weights: Weights = None,
    detector: Detector = "s3fd",
    limit: Limit = None,
    workers: Workers = None,
) -> None:
    """Train G_L, the lip-sync generator (the model `ours` loads), with the losses of the config."""
    opts = _Options(dataset, root, out, split, val_split, config, steps, weights, detector, limit, workers)
    _train("generator", opts, {"avsyncnet": avsyncnet, "silent": silent})


@train_app.command("export")
def export(
    source: Annotated[Path, typer.Argument(help="A stage's training checkpoint (OUT/last.pt).")],
    dest: Annotated[Path, typer.Argument(help="The inference-only file to write.")],
    label: Annotated[str, typer.Option(help='What the weights are, e.g. "synthetic-data demo weights".')],
    half: Annotated[bool, typer.Option(help="Store floating-point tensors as float16.")] = False,
) -> None:
    """Write an inference-only copy of a checkpoint: the networks inference uses and a label, no optimiser
    state (what `ours` and the AVSyncNet loader read; it cannot be resumed)."""
    from tfbench.models.training.checkpoint import export_checkpoint
    from tfbench.weights import sha256_file

    path = export_checkpoint(source, dest, label, half=half)
    size, digest = path.stat().st_size, sha256_file(path)
    console.print(f"{path}: {size} bytes, sha256 {digest}", highlight=False, soft_wrap=True)
