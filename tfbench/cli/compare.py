"""`tfbench compare` and `tfbench runs`: runs side by side, and the run folders with their key numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tfbench.cli.app import app, console
from tfbench.cli.tables import summary_table


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="Run folder A.")],
    run_b: Annotated[Path, typer.Argument(help="Run folder B.")],
) -> None:
    """Compare two runs on their common samples: difference, 95% CI, Wilcoxon p, and which is better."""
    from tfbench.benchmark.compare import compare_runs

    comparisons, n_common = compare_runs(run_a, run_b)
    table = Table(title=f"B = {run_b.name} vs A = {run_a.name} on {n_common} common samples")
    for column in ("metric", "A", "B", "B - A", "95% CI", "Wilcoxon p", "n", "better"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for c in comparisons:
        r = c.result
        table.add_row(
            f"{c.metric} {'↑' if c.higher_is_better else '↓'}",
            f"{r.mean_a:.4g}",
            f"{r.mean_b:.4g}",
            f"{r.diff:+.4g}",
            f"[{r.ci_low:+.3g}, {r.ci_high:+.3g}]",
            f"{r.p_value:.3g}",
            str(r.n),
            c.better or "tie",
        )
    console.print(table)


@app.command()
def runs(
    folder: Annotated[Path, typer.Argument(help="Folder holding run folders.")] = Path("runs"),
) -> None:
    """List the finished runs under a folder with their key numbers."""
    from tfbench.benchmark.results import RunStore

    summaries = {}
    for run_dir in sorted(p for p in folder.glob("*") if (p / "summary.json").is_file()):
        summaries[run_dir.name] = RunStore(run_dir).read_summary()
    if not summaries:
        console.print(f"no finished runs under {folder}")
        return
    console.print(summary_table(summaries))
