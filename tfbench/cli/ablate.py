"""`tfbench ablate --grid FILE|paper`: train and evaluate every row of an ablation grid, then its table."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from tfbench.cli.app import app, err_console, options, resolve_device

Name = Annotated[str | None, typer.Option(help="Overrides the grid's value.")]
Limit = Annotated[int | None, typer.Option(help="Only the first N clips (by id); overrides the grid's.")]


@app.command()
def ablate(
    grid: Annotated[str, typer.Option(help="Grid YAML file, or a bundled grid: paper (the paper's rows).")],
    out: Annotated[Path | None, typer.Option(help="Work folder (default runs/ablation-<grid name>).")] = None,
    dataset: Name = None,
    root: Annotated[Path | None, typer.Option(help="Dataset root; overrides the grid's.")] = None,
    train_split: Name = None,
    val_split: Name = None,
    eval_split: Name = None,
    detector: Name = None,
    train_limit: Limit = None,
    eval_limit: Limit = None,
    avsyncnet: Annotated[
        Path | None, typer.Option(help="An AVSyncNet checkpoint to use instead of training one.")
    ] = None,
    weights: Annotated[list[str] | None, typer.Option("--weights", help="NAME=PATH, repeatable.")] = None,
    paper: Annotated[
        bool, typer.Option("--paper", help="Show the paper's published ablation numbers beside each row.")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="Table printed: md, latex or csv.")] = "md",
) -> None:
    """Train what each grid row needs (shared stages once), evaluate each with `ours`, print the table."""
    from tfbench.errors import TfbenchError
    from tfbench.reports.ablation import TABLE_FILES, ablation_table, run_ablation, write_tables
    from tfbench.reports.grid import load_grid
    from tfbench.reports.tables import render
    from tfbench.weights import parse_overrides

    if fmt not in TABLE_FILES:
        raise TfbenchError(f"--format {fmt!r}: choose one of {', '.join(TABLE_FILES)}")
    loaded = load_grid(grid)
    given: dict[str, Any] = {
        "dataset": dataset,
        "root": root,
        "train_split": train_split,
        "val_split": val_split,
        "eval_split": eval_split,
        "detector": detector,
        "train_limit": train_limit,
        "eval_limit": eval_limit,
    }
    data = dataclasses.replace(loaded.data, **{k: v for k, v in given.items() if v is not None})
    loaded = dataclasses.replace(loaded, data=data, avsyncnet=avsyncnet or loaded.avsyncnet)
    folder = out or Path("runs") / f"ablation-{loaded.name}"
    outcome = run_ablation(
        loaded,
        folder,
        device=resolve_device(options().device),
        overrides=parse_overrides(weights or []),
        log=lambda message: err_console.print(message, highlight=False),
    )
    table = ablation_table(loaded, outcome.run_dirs, paper=paper)
    written = write_tables(table, folder)
    typer.echo(render(table, fmt), nl=False)
    err_console.print(f"tables: {', '.join(map(str, written))}", highlight=False)
