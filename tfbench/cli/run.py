"""`tfbench run`: generate and score a dataset split with one model (also under `torchrun`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tfbench.cli.app import app, console, options, progress, resolve_device
from tfbench.cli.tables import summary_table

DEFAULT_METRICS = "lse,ssim,psnr,lpips,fid"


class ProtocolChoice(StrEnum):
    reconstruction = "reconstruction"
    pairs = "pairs"


@app.command()
def run(
    model: Annotated[str, typer.Option(help="Registered model name (see `tfbench models`).")],
    dataset: Annotated[str, typer.Option(help="Dataset name: lrs2, lrs3, lrw, hdtf, folder, synthetic.")],
    root: Annotated[Path, typer.Option(help="Dataset root folder.")],
    split: Annotated[str, typer.Option(help="Split name.")] = "test",
    protocol: Annotated[
        ProtocolChoice, typer.Option(help="reconstruction (own audio) or pairs (cross-audio).")
    ] = ProtocolChoice.reconstruction,
    metrics: Annotated[str, typer.Option(help="Comma-separated metric names.")] = DEFAULT_METRICS,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/<model>-<dataset>-...).")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N samples (sorted by id).")] = None,
    detector: Annotated[str, typer.Option(help="Face detector: s3fd, s3fd_fan, dlib or none.")] = "s3fd",
    weights: Annotated[list[str] | None, typer.Option("--weights", help="NAME=PATH, repeatable.")] = None,
    model_option: Annotated[
        list[str] | None,
        typer.Option("--model-option", help="KEY=VALUE, repeatable: a model option (see `tfbench models`)."),
    ] = None,
    shift: Annotated[
        int | None, typer.Option(help="Frames of shift for `--model shifted` (= --model-option shift=K).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Threads preparing the next samples.")] = 2,
    fid_resize: Annotated[str, typer.Option(help="pytorch_fid or clean.")] = "pytorch_fid",
    lse_protocol: Annotated[
        str, typer.Option(help="tfbench, w2l_lrs, syncnet_pipeline or syncnet_pipeline_50.")
    ] = "tfbench",
    precision: Annotated[
        str, typer.Option(help="Metric networks: fp32 (default) or bf16 (faster on bf16 hardware; lse, fid).")
    ] = "fp32",
) -> None:
    """Generate every sample of a split with a model, score it, and write the run folder."""
    from tfbench.benchmark.distributed import init_distributed
    from tfbench.benchmark.options import RunOptions
    from tfbench.benchmark.runner import Runner
    from tfbench.models.protocol import parse_key_values
    from tfbench.weights import parse_overrides

    sugar = [f"shift={shift}"] if shift is not None else []
    model_options = parse_key_values([*(model_option or []), *sugar])
    run_options = RunOptions(
        model=model,
        dataset=dataset,
        root=root,
        split=split,
        protocol=protocol.value,
        metrics=tuple(m.strip() for m in metrics.split(",") if m.strip()),
        out=out,
        limit=limit,
        detector=detector,
        overrides=parse_overrides(weights or []),
        model_options=model_options,
        workers=workers,
        fid_resize=fid_resize,
        lse_protocol=lse_protocol,
        precision=precision,
    )
    dist = init_distributed(resolve_device(options().device))
    runner = Runner(run_options, dist)
    with progress() as bar:
        task = bar.add_task(f"{model} on {dataset}/{split}", total=None)
        store = runner.run(lambda done, total: bar.update(task, completed=done, total=total))
    if dist.is_main:
        summary = store.read_summary()
        console.print(summary_table({model: summary}))
        console.print(f"run folder: {store.run_dir}")
