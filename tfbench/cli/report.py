"""`tfbench report`: one table of run folders as Markdown, LaTeX, CSV or a self-contained HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tfbench.cli.app import app


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (each with summary.json).")],
    paper: Annotated[
        bool, typer.Option("--paper", help="Show the paper's published value and the difference beside each.")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="md, latex, csv or html.")] = "md",
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file instead of stdout.")] = None,
    stability: Annotated[
        Path | None,
        typer.Option(help="A `tfbench stability` output folder whose PNG figures the HTML page embeds."),
    ] = None,
) -> None:
    """Render runs as one table (best in bold, 95% CI, optional published numbers) or an HTML report."""
    from tfbench.fileio import atomic_write_text
    from tfbench.reports.tables import build_table, render

    text = render(build_table(runs, paper=paper), fmt, stability=stability)
    if out is None:
        typer.echo(text, nl=False)
    else:
        atomic_write_text(out, text)
        typer.echo(f"wrote {out}", err=True)
