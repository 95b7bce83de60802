"""`tfbench stability`: the paper's Figure 1 (SyncNet vs AVSyncNet on ground-truth pairs) with its numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tfbench.cli.app import app, console, options, progress, resolve_device


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


@app.command()
def stability(
    dataset: Annotated[str, typer.Option(help="Dataset name: lrs2, lrs3, lrw, hdtf, folder, synthetic.")],
    root: Annotated[Path, typer.Option(help="Dataset root folder.")],
    split: Annotated[str, typer.Option(help="Split to draw the clips from.")] = "test",
    samples: Annotated[int, typer.Option(help="Number of random clips (at least 2).")] = 20,
    experts: Annotated[str, typer.Option(help="Comma-separated: syncnet, avsyncnet, wav2lip.")] = (
        "syncnet,avsyncnet"
    ),
    perturbations: Annotated[
        str, typer.Option(help="Comma-separated: jitter, jpeg, brightness, h264 (empty: none).")
    ] = "jitter,jpeg,brightness,h264",
    out: Annotated[Path, typer.Option(help="Output folder for the figure and tables.")] = Path("stability"),
    weights: Annotated[list[str] | None, typer.Option("--weights", help="NAME=PATH, repeatable.")] = None,
    detector: Annotated[str, typer.Option(help="Face detector: s3fd, s3fd_fan, dlib or none.")] = "s3fd",
    seed: Annotated[int, typer.Option(help="Seed of the clip draw, the off-sync pairs and the split.")] = 0,
) -> None:
    """Similarity of ground-truth audio-lip pairs per window for each sync expert: figure and tables."""
    from tfbench.reports.stability import StabilityOptions, StabilityStudy
    from tfbench.reports.stability_io import write_report
    from tfbench.weights import parse_overrides

    study_options = StabilityOptions(
        dataset=dataset,
        root=root,
        split=split,
        samples=samples,
        experts=_names(experts),
        perturbations=_names(perturbations),
        detector=detector,
        seed=seed,
        overrides=parse_overrides(weights or []),
        device=resolve_device(options().device),
    )
    study = StabilityStudy(study_options)
    with progress() as bar:
        task = bar.add_task(f"stability of {dataset}/{split}", total=None)
        report = study.run(lambda done, total: bar.update(task, completed=done, total=total))
    written = write_report(report, out)
    text = (out / "stability.md").read_text(encoding="utf-8")
    console.print(text, markup=False, highlight=False, soft_wrap=True)
    console.print(f"wrote {len(written)} files to {out}")
