"""`tfbench data check`: what a dataset split holds, and what is missing or unreadable, before a long run.

`data_app` is the `tfbench data` group; other modules add their commands to it (`data prepare`). The
library is imported inside the commands, so `tfbench --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.progress import TaskID
from rich.table import Table

from tfbench.cli.app import app, console, progress

if TYPE_CHECKING:
    from tfbench.data.loading import DatasetReport, LoadProtocol
    from tfbench.data.splits import PairOrder

data_app = typer.Typer(no_args_is_help=True)
app.add_typer(data_app, name="data", help="Check datasets and fill the face-crop cache before a run.")


def _summary(report: DatasetReport) -> Table:
    table = Table(title=f"tfbench data check: {report.dataset} {report.split}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    rows = {
        "root": str(report.root),
        "protocol": report.protocol,
        "list": report.source,
        "samples": str(report.n_samples),
        "files": str(report.n_files),
        "present": f"[green]{len(report.present)}[/green]",
        "missing": f"[red]{len(report.missing)}[/red]" if report.missing else "0",
        "unreadable": f"[red]{len(report.unreadable)}[/red]" if report.unreadable else "0",
    }
    for name, value in rows.items():
        table.add_row(name, value)
    return table


def _problems(report: DatasetReport, show: int) -> Table:
    table = Table(title=f"problems (paths relative to {report.root})")
    for column in ("status", "file", "used as", "sample", "reason"):
        table.add_column(column, overflow="fold")
    problems = [("missing", p) for p in report.missing] + [("unreadable", p) for p in report.unreadable]
    for status, problem in problems[:show]:
        sample = problem.first_sample + (f" (+{problem.n_samples - 1})" if problem.n_samples > 1 else "")
        path = (
            problem.path.relative_to(report.root)
            if problem.path.is_relative_to(report.root)
            else problem.path
        )
        table.add_row(f"[red]{status}[/red]", str(path), ", ".join(problem.roles), sample, problem.reason)
    if len(problems) > show:
        table.caption = f"... and {len(problems) - show} more (--show N lists more)"
    return table


@data_app.command("check")
def check(
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="lrs2, lrs3, lrw, hdtf, folder, synthetic/demo.")
    ],
    root: Annotated[Path, typer.Option("--root", help="The dataset's root folder.")],
    split: Annotated[str, typer.Option(help="Split to check.")] = "test",
    protocol: Annotated[
        str, typer.Option(help="reconstruction (each clip's own audio) or pairs (a cross-pair list).")
    ] = "reconstruction",
    pairs_file: Annotated[
        Path | None, typer.Option(help="Pair list for --protocol pairs (default: the published list).")
    ] = None,
    pair_order: Annotated[
        str, typer.Option(help="Column order of the pair list: audio-video (Wav2Lip's) or video-audio.")
    ] = "audio-video",
    split_file: Annotated[
        Path | None, typer.Option(help="A list of clip ids instead of the split's own.")
    ] = None,
    reference: Annotated[
        Path | None, typer.Option(help="folder dataset: ground-truth directory, paired by relative path.")
    ] = None,
    weights: Annotated[
        list[str] | None, typer.Option("--weights", help="NAME=PATH for a pair list kept elsewhere.")
    ] = None,
    deep: Annotated[bool, typer.Option("--deep", help="Decode every frame, not only the headers.")] = False,
    show: Annotated[int, typer.Option(help="Problems to list.")] = 20,
) -> None:
    """Report present, missing and unreadable files of a split; exit code 1 if any file is not usable."""
    from tfbench.data.loading import check_dataset
    from tfbench.weights import parse_overrides

    bar = progress()
    task: TaskID | None = None

    def update(done: int, total: int) -> None:
        nonlocal task
        if task is None:  # started on the first file, so a listing error is printed without a bar
            bar.start()
            task = bar.add_task(f"checking {dataset} {split}", total=total)
        bar.update(task, completed=done, total=total)

    try:
        report = check_dataset(
            dataset,
            root,
            split,
            cast("LoadProtocol", protocol),
            pairs_file,
            split_file=split_file,
            reference=reference,
            pair_order=cast("PairOrder", pair_order),
            weights=parse_overrides(weights or []),
            deep=deep,
            progress=update,
        )
    finally:
        bar.stop()
    console.print(_summary(report))
    if not report.ok:
        console.print(_problems(report, show))
        raise typer.Exit(code=1)
    console.print(f"[green]ok[/green]: all {report.n_files} files of {report.n_samples} samples are readable")
