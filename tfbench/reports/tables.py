"""One results table from run folders, rendered as Markdown, LaTeX (booktabs) or CSV.

Rows are runs, columns are metrics. The direction of a per-video metric comes from `higher_is_better` in the
run's summary.json (written from the metric's own attribute); a dataset-level value (FID) has no direction
there, so it is taken from the published-numbers data. The table is built once (`build_table`) and every
renderer reads the same `ReportTable`, so the formats cannot disagree on which value is best.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfbench.benchmark.results import RunStore
from tfbench.errors import TfbenchError
from tfbench.reports.published import DEFAULT_REFERENCE_ROW, load_published

FORMATS = ("md", "latex", "csv", "html")


@dataclass(frozen=True)
class Column:
    """A metric column; `higher_is_better` None means unknown direction (no arrow, no bold)."""

    key: str
    higher_is_better: bool | None
    dataset_level: bool = False

    @property
    def arrow(self) -> str:
        return "" if self.higher_is_better is None else ("↑" if self.higher_is_better else "↓")


@dataclass(frozen=True)
class Cell:
    """One run's value of one metric, its 95% CI, and (with --paper) the published value and difference."""

    mean: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    published: float | None = None
    diff: float | None = None
    best: bool = False


@dataclass(frozen=True)
class RunRow:
    """One run: display name, folder, dataset and its cells by metric key."""

    name: str
    run_dir: Path
    dataset: str | None
    cells: Mapping[str, Cell]


@dataclass(frozen=True)
class ReportTable:
    """The table every renderer reads."""

    columns: tuple[Column, ...]
    rows: tuple[RunRow, ...]
    paper: bool = False
    paper_source: str | None = None
    row_header: str = "run"


def _float(value: Any) -> float | None:
    """summary.json numbers: "inf"/"-inf" strings are infinities, null (NaN) is None."""
    if value in ("inf", "-inf"):
        return math.inf if value == "inf" else -math.inf
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _load_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    store = RunStore(run_dir)
    if not run_dir.is_dir():
        raise TfbenchError(f"{run_dir}: no such run folder")
    return store.read_config() or {}, store.read_summary()


@dataclass(frozen=True)
class TableEntry:
    """One row to build: a finished run folder, its display name (None: the run's model name) and, for
    --paper, the published values to show beside it (None: nothing published for this row)."""

    run_dir: Path
    label: str | None = None
    reference: Mapping[str, float | None] | None = None


def build_table(
    run_dirs: Sequence[str | Path], paper: bool = False, reference_row: str = DEFAULT_REFERENCE_ROW
) -> ReportTable:
    """The table of `run_dirs`; with `paper`, each cell of a run whose dataset has published numbers
    (e.g. lrs2) also holds the published value of `reference_row` and the difference run - paper."""
    if not run_dirs:
        raise TfbenchError("no run folders given")
    published = load_published()
    entries: list[TableEntry] = []
    sources: set[str] = set()
    for run_dir in map(Path, run_dirs):
        dataset = (RunStore(run_dir).read_config() or {}).get("dataset")
        reference = published.reference(str(dataset), reference_row) if paper and dataset else None
        if reference is not None:
            sources.add(f"{published.paper}, row {reference.method!r} (data {published.data_version})")
        entries.append(TableEntry(run_dir, None, None if reference is None else reference.values))
    return table_of_entries(entries, paper, "; ".join(sorted(sources)))


def table_of_entries(
    entries: Sequence[TableEntry],
    paper: bool = False,
    paper_source: str | None = None,
    row_header: str = "run",
) -> ReportTable:
    """The table of `entries` (each a finished run); `paper_source` says where the references come from."""
    published = load_published()
    loaded = [(entry, *_load_run(Path(entry.run_dir))) for entry in entries]
    columns: dict[str, Column] = {}
    for _, _, summary in loaded:
        for key, info in (summary.get("metrics") or {}).items():
            direction = info.get("higher_is_better")
            columns.setdefault(key, Column(key, direction if isinstance(direction, bool) else None))
    for _, _, summary in loaded:
        for key, value in (summary.get("dataset_metrics") or {}).items():
            if _float(value) is not None or value is None:
                columns.setdefault(key, Column(key, published.direction(key), dataset_level=True))
    names = [entry.label or str(config.get("model") or entry.run_dir.name) for entry, config, _ in loaded]
    rows: list[RunRow] = []
    for (entry, config, summary), name in zip(loaded, names, strict=True):
        dataset = None if config.get("dataset") is None else str(config["dataset"])
        cells: dict[str, Cell] = {}
        for column in columns.values():
            if column.dataset_level:
                stats: Mapping[str, Any] = {"mean": (summary.get("dataset_metrics") or {}).get(column.key)}
            else:
                stats = (summary.get("metrics") or {}).get(column.key) or {}
            mean = _float(stats.get("mean"))
            ref = None if entry.reference is None else entry.reference.get(column.key)
            n = stats.get("n")
            cells[column.key] = Cell(
                mean=mean,
                ci_low=_float(stats.get("ci_low")),
                ci_high=_float(stats.get("ci_high")),
                n=n if isinstance(n, int) else None,
                published=ref,
                diff=mean - ref if mean is not None and math.isfinite(mean) and ref is not None else None,
            )
        display = name if names.count(name) == 1 else f"{name} ({entry.run_dir.name})"
        rows.append(RunRow(display, Path(entry.run_dir), dataset, cells))
    best = _mark_best(rows, columns)
    return ReportTable(tuple(columns.values()), tuple(best), paper, paper_source or None, row_header)


def _mark_best(rows: list[RunRow], columns: Mapping[str, Column]) -> list[RunRow]:
    """Bold the best finite mean per column (direction-aware; ties all bold; unknown direction: none)."""
    best: dict[str, float] = {}
    for key, column in columns.items():
        values = [m for r in rows if (m := r.cells[key].mean) is not None and math.isfinite(m)]
        if column.higher_is_better is not None and values:
            best[key] = max(values) if column.higher_is_better else min(values)
    return [
        RunRow(
            r.name,
            r.run_dir,
            r.dataset,
            {
                k: Cell(**{**c.__dict__, "best": k in best and c.mean == best[k] and len(rows) > 1})
                for k, c in r.cells.items()
            },
        )
        for r in rows
    ]


def fmt_number(value: float | None, signed: bool = False) -> str:
    """Display form of a number: `-` for missing, 3 decimals below 10, 2 above (keeps 0.952 and 32.64)."""
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"
    return f"+{text}" if signed and value >= 0 else text


def fmt_published(value: float | None) -> str:
    """A published number as the paper prints it (6.03 stays 6.03), `-` where the paper gives none."""
    return "-" if value is None else f"{value:g}"


def fmt_ci(cell: Cell) -> str:
    """`[low, high]` of the 95% CI, or "" when the run has none (dataset-level values, n < 2)."""
    if not (_finite(cell.ci_low) and _finite(cell.ci_high)):
        return ""
    return f"[{fmt_number(cell.ci_low)}, {fmt_number(cell.ci_high)}]"


def header_cells(table: ReportTable) -> list[tuple[str, str]]:
    """(metric key, header text) per displayed column; with --paper each metric has paper and Δ columns."""
    headers: list[tuple[str, str]] = [("", table.row_header)]
    for column in table.columns:
        headers.append((column.key, f"{column.key} {column.arrow}".strip()))
        if table.paper:
            headers += [(column.key, f"{column.key} paper"), (column.key, f"{column.key} Δ")]
    return headers


def _row_texts(
    table: ReportTable, row: RunRow, bold: Callable[[str], str], ci: Callable[[str], str]
) -> list[str]:
    texts = [row.name]
    for column in table.columns:
        cell = row.cells[column.key]
        value = fmt_number(cell.mean)
        value = bold(value) if cell.best else value
        interval = fmt_ci(cell)
        texts.append(f"{value} {ci(interval)}" if interval else value)
        if table.paper:
            texts += [fmt_published(cell.published), fmt_number(cell.diff, signed=True)]
    return texts


def to_markdown(table: ReportTable) -> str:
    """A GitHub-flavoured Markdown table: best in **bold**, the 95% CI in brackets after the mean."""
    headers = [text for _, text in header_cells(table)]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join([":---"] + ["---:"] * (len(headers) - 1)) + "|",
    ]
    for row in table.rows:
        lines.append("| " + " | ".join(_row_texts(table, row, lambda s: f"**{s}**", lambda s: s)) + " |")
    notes = ["Mean over videos with its 95% bootstrap CI in brackets; best per column in bold."]
    if table.paper:
        notes.append(
            f"paper: published value ({table.paper_source or 'none for these datasets'}); Δ = run - paper."
        )
    return "\n".join(lines) + "\n\n" + " ".join(notes) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters; the arrows and Δ become math."""
    escaped = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
    return escaped.replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$").replace("Δ", r"$\Delta$")


def to_latex(table: ReportTable) -> str:
    """A booktabs `tabular` fragment (needs \\usepackage{booktabs}); best in \\textbf, CI in \\scriptsize."""
    headers = [latex_escape(text) for _, text in header_cells(table)]
    lines = [
        r"\begin{tabular}{l" + "r" * (len(headers) - 1) + "}",
        r"\toprule",
        " & ".join(headers) + r" \\",
        r"\midrule",
    ]
    for row in table.rows:
        texts = _row_texts(table, row, lambda s: "\x00" + s + "\x01", lambda s: "\x02" + s + "\x03")
        cells = [
            latex_escape(t)
            .replace("\x00", r"\textbf{")
            .replace("\x01", "}")
            .replace("\x02", r"{\scriptsize ")
            .replace("\x03", "}")
            for t in texts
        ]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _csv_value(value: float | None) -> str:
    return "" if value is None else repr(value)


def to_csv(table: ReportTable) -> str:
    """Plain numbers, one column per value: KEY, KEY_ci_low, KEY_ci_high, KEY_n, KEY_published, KEY_diff."""
    suffixes = ["", "_ci_low", "_ci_high", "_n"] + (["_published", "_diff"] if table.paper else [])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [table.row_header, "run_dir", "dataset"] + [f"{c.key}{s}" for c in table.columns for s in suffixes]
    )
    for row in table.rows:
        values: list[str] = [row.name, str(row.run_dir), row.dataset or ""]
        for column in table.columns:
            cell = row.cells[column.key]
            fields = [cell.mean, cell.ci_low, cell.ci_high]
            fields += [cell.published, cell.diff] if table.paper else []
            texts = [_csv_value(v) for v in fields]
            values += [*texts[:3], "" if cell.n is None else str(cell.n), *texts[3:]]
        writer.writerow(values)
    return out.getvalue()


def render(table: ReportTable, fmt: str, stability: str | Path | None = None) -> str:
    """The table in `fmt` (md, latex, csv, or html: the self-contained page with figures, including the
    PNG figures of the `tfbench stability` folder `stability`, which only the HTML page can show)."""
    if fmt == "html":
        from tfbench.reports.html import render_html

        return render_html(table, stability=stability)
    if stability is not None:
        raise TfbenchError("--stability embeds figures in the HTML page: use it with --format html")
    renderers: dict[str, Callable[[ReportTable], str]] = {"md": to_markdown, "latex": to_latex, "csv": to_csv}
    if fmt not in renderers:
        raise TfbenchError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return renderers[fmt](table)
