"""`tfbench weights list|fetch|verify|path`: set up, check and locate the files that come from outside."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from tfbench import weights as w
from tfbench.cli.app import app, console, err_console
from tfbench.errors import WeightsError

weights_app = typer.Typer(no_args_is_help=True)
app.add_typer(
    weights_app,
    name="weights",
    help="List, download, verify and locate weight files and dataset pair lists.",
)

_HASH_STATUS = {
    "sha256": "full sha256",
    "pinned": "pinned sha256",
    "prefix": "prefix only (full hash pinned on first verified download)",
    "unpinned": "to be pinned on first verified download",
}


def _size(n: int | None) -> str:
    """Bytes as a short human size; '?' where the registry does not know the exact size."""
    if n is None:
        return "?"
    value, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB"):  # noqa: B007  (the last unit tried is the one shown)
        if value < 1024:
            break
        value /= 1024
    return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"


@weights_app.command("list")
def list_weights() -> None:
    """Show every registered file, whether it is present, and how its hash is known."""
    table = Table(title="tfbench weights", show_lines=True)
    table.add_column("name", no_wrap=True)
    table.add_column("present", no_wrap=True)
    table.add_column("hash")
    table.add_column("size", no_wrap=True, justify="right")
    table.add_column("description / file / licence / source", overflow="fold")
    for name, spec in w.WEIGHTS.items():
        path = w.expected_path(name)
        manual = (
            " [yellow](download by hand)[/yellow]"
            if spec.manual
            else " (ships with tfbench)"
            if spec.packaged
            else ""
        )
        details = f"{spec.description}\n[dim]file:[/dim] {path}\n[dim]licence:[/dim] {spec.licence}"
        table.add_row(
            name,
            "[green]yes[/green]" if path.is_file() else "[yellow]no[/yellow]",
            _HASH_STATUS[w.hash_status(name)],
            _size(spec.size),
            f"{details}\n[dim]source:[/dim] {spec.source}{manual}",
        )
    console.print(table)


@weights_app.command("fetch")
def fetch(
    names: Annotated[list[str], typer.Argument(help="Entries to download (see `weights list`).")],
) -> None:
    """Download entries into the cache, checking their sha256 before they are moved into place."""
    for name in names:
        w.spec(name)  # unknown names fail before anything is downloaded
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
    )
    with bar:
        for name in names:
            task = bar.add_task(name, total=None)

            def update(done: int, total: int | None, task_id: TaskID = task) -> None:
                bar.update(task_id, completed=done, total=total)

            path = w.fetch(name, progress=update)
            bar.update(task, visible=False)
            console.print(f"{name}: {path}", highlight=False, soft_wrap=True)


@weights_app.command("verify")
def verify(
    names: Annotated[
        list[str] | None, typer.Argument(help="Entries to check; all present ones if none.")
    ] = None,
) -> None:
    """Re-hash cached files against their registry hash or pin; exit code 1 if any fails."""
    if names:
        selected = [w.spec(name).name for name in names]
    else:
        selected = [name for name, _ in w.WEIGHTS.items() if w.expected_path(name).is_file()]
        if not selected:
            console.print("no weight files are present yet; see `tfbench weights list`")
            return
    table = Table(title="tfbench weights verify")
    for column in ("name", "status", "path", "detail"):
        table.add_column(column, overflow="fold")
    failed = 0
    for name in selected:
        result = w.verify(name)
        failed += not result.ok
        status = (
            "[green]ok[/green]" if result.ok else "[red]bad[/red]" if result.present else "[red]missing[/red]"
        )
        table.add_row(name, status, str(result.path), result.detail)
    console.print(table)
    if failed:
        raise typer.Exit(code=1)


@weights_app.command("path")
def path(name: Annotated[str, typer.Argument(help="Registry entry.")]) -> None:
    """Print the path a loader would open for NAME; exit code 1 if the file is missing."""
    try:
        found = w.resolve(name)
    except WeightsError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from exc
    typer.echo(str(found))
