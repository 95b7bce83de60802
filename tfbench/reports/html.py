"""The self-contained HTML report: the results table, stability figures, per-metric distributions across
videos, and a frame grid comparing the ground truth with every run on the same frames.

One file with no external assets (figures are base64 PNGs drawn with matplotlib's Agg backend or read from
a `tfbench stability` folder, the style is inline), so it can be mailed, attached to an issue or opened from
disk in a browser with no server. Anything a run lacks (results.parquet, a video) is said in the page
instead of failing the report.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tfbench.benchmark.results import STATUS_OK, RunStore
from tfbench.errors import TfbenchError
from tfbench.reports.tables import ReportTable, RunRow, fmt_ci, fmt_number, fmt_published, header_cells

N_GRID_FRAMES = 4
GROUND_TRUTH = "ground truth"
"""Row label of the source video in the frame grid."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STABILITY_TABLE = "stability.csv"
"""The per-expert table `tfbench stability` writes into its folder (beside figure1.png)."""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border-bottom: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.ci { color: #666; font-size: 0.8em; }
.missing { color: #a33; }
img { max-width: 100%; }
figure { margin: 1em 0; }
figcaption { color: #444; font-size: 0.9em; }
"""


def _img(png: bytes, alt: str = "figure") -> str:
    """PNG bytes as an <img> with a base64 data URI."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _png(fig: Any) -> str:
    """A matplotlib figure as an <img> with a base64 data URI (and the figure closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return _img(buffer.getvalue())


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def table_html(table: ReportTable) -> str:
    """The results table as an HTML <table>: best in <strong>, the CI in small grey type."""
    head = "".join(f"<th>{html.escape(text)}</th>" for _, text in header_cells(table))
    body = []
    for row in table.rows:
        cells = [f"<td>{html.escape(row.name)}</td>"]
        for column in table.columns:
            cell = row.cells[column.key]
            value = html.escape(fmt_number(cell.mean))
            value = f"<strong>{value}</strong>" if cell.best else value
            interval = fmt_ci(cell)
            ci = f' <span class="ci">{html.escape(interval)}</span>' if interval else ""
            cells.append(f"<td>{value}{ci}</td>")
            if table.paper:
                cells.append(f"<td>{fmt_published(cell.published)}</td>")
                cells.append(f"<td>{fmt_number(cell.diff, signed=True)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _results(row: RunRow) -> pd.DataFrame | None:
    path = RunStore(row.run_dir).results_path
    if not path.is_file():
        return None
    table = pd.read_parquet(path)
    return table[table["status"] == STATUS_OK] if "status" in table else table


def distributions_html(table: ReportTable, results: dict[str, pd.DataFrame | None]) -> str:
    """One strip plot per per-video metric: each run's values across videos, with its mean marked."""
    plt = _pyplot()
    parts = []
    rng = np.random.default_rng(0)
    for column in (c for c in table.columns if not c.dataset_level):
        series = []
        for row in table.rows:
            frame = results.get(row.name)
            if frame is not None and column.key in frame:
                values = pd.to_numeric(frame[column.key], errors="coerce").to_numpy(dtype=float)
                series.append((row.name, values[np.isfinite(values)]))
        if not any(len(v) for _, v in series):
            continue
        fig, ax = plt.subplots(figsize=(6, 0.6 + 0.5 * len(series)))
        for i, (_, values) in enumerate(series):
            ax.scatter(values, i + rng.uniform(-0.15, 0.15, len(values)), s=10, alpha=0.6)
            if len(values):
                ax.plot([values.mean()] * 2, [i - 0.3, i + 0.3], color="black", linewidth=2)
        ax.set_yticks(range(len(series)), [name for name, _ in series])
        ax.set_xlabel(f"{column.key} {column.arrow} (per video; bar = mean)")
        parts.append(f"<h3>{html.escape(column.key)}</h3>{_png(fig)}")
    return "".join(parts) or "<p>No per-video values to plot.</p>"


def _grid_sample(results: dict[str, pd.DataFrame | None]) -> str | None:
    """The first sample id scored with an output video in every run that has results (else in any run)."""
    id_sets = [
        set(frame.loc[frame["output"].notna(), "sample_id"])
        for frame in results.values()
        if frame is not None and "output" in frame and "sample_id" in frame
    ]
    if not id_sets:
        return None
    common = set.intersection(*id_sets)
    return min(common) if common else min(set.union(*id_sets))


def _read_frames(path: Path) -> np.ndarray | str:
    """The frames of the video at `path`, or the reason they cannot be shown."""
    from tfbench.media import read_video

    if not path.is_file():
        return f"video missing: {path}"
    try:
        return read_video(path, fps=None, audio=False).frames
    except TfbenchError as exc:
        return f"video unreadable: {exc}"


def _frames(row: RunRow, frame: pd.DataFrame | None, sample: str) -> np.ndarray | str:
    """The run's generated frames for `sample`, or the reason they cannot be shown."""
    if frame is None or "output" not in frame:
        return "no results.parquet with an output column"
    match = frame.loc[frame["sample_id"] == sample, "output"]
    if match.empty or not isinstance(match.iloc[0], str):
        return f"no output video for {sample}"
    return _read_frames(row.run_dir / match.iloc[0])


def _ground_truth(results: dict[str, pd.DataFrame | None], sample: str) -> np.ndarray | str:
    """The source video of `sample` as the runs recorded it (their `video` column), or why it is absent."""
    for frame in results.values():
        if frame is not None and "video" in frame:
            match = frame.loc[frame["sample_id"] == sample, "video"]
            if not match.empty and isinstance(match.iloc[0], str):
                return _read_frames(Path(match.iloc[0]))
    return f"no run records the source video of {sample}"


def frame_grid_html(
    table: ReportTable, results: dict[str, pd.DataFrame | None], n: int = N_GRID_FRAMES
) -> str:
    """The same frames (evenly spaced indices) of the ground truth and of each run's generated video for one
    common sample. Runs write frame i of their output from source frame i (every frame has a crop), so
    equal indices show the same moment; a source resampled to 25 fps is shown resampled alike."""
    sample = _grid_sample(results)
    if sample is None:
        return '<p class="missing">No run records output videos.</p>'
    videos = {GROUND_TRUTH: _ground_truth(results, sample)}
    videos |= {row.name: _frames(row, results.get(row.name), sample) for row in table.rows}
    notes = [
        f'<p class="missing">{html.escape(name)}: {html.escape(v)}</p>'
        for name, v in videos.items()
        if isinstance(v, str)
    ]
    shown = {name: v for name, v in videos.items() if not isinstance(v, str)}
    if not shown:
        return "".join(notes)
    length = min(len(v) for v in shown.values())
    indices = np.unique(np.linspace(0, length - 1, min(n, length)).round().astype(int))
    plt = _pyplot()
    fig, axes = plt.subplots(
        len(shown), len(indices), figsize=(1.8 * len(indices), 1.9 * len(shown)), squeeze=False
    )
    for r, (name, frames) in enumerate(shown.items()):
        for c, index in enumerate(indices):
            axes[r][c].imshow(frames[index])
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
            if r == 0:
                axes[r][c].set_title(f"frame {index}", fontsize=8)
        axes[r][0].set_ylabel(name, fontsize=8)
    caption = (
        f"<p>Sample <code>{html.escape(sample)}</code>, frames {', '.join(map(str, indices))}; "
        f"rows: {html.escape(', '.join(shown))}.</p>"
    )
    return caption + _png(fig) + "".join(notes)


def _csv_table(path: Path) -> str:
    """A small CSV file as an HTML table; numbers shown to 4 significant digits, empty cells as `-`."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    if not rows:
        return ""

    def cell(text: str) -> str:
        try:
            return html.escape(f"{float(text):.4g}") if text else "-"
        except ValueError:
            return html.escape(text)

    head = "".join(f"<th>{html.escape(text)}</th>" for text in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{cell(t)}</td>" for t in row) + "</tr>" for row in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def stability_html(folder: Path) -> str:
    """A `tfbench stability` output folder: its per-expert table (`STABILITY_TABLE`, when present) and every
    PNG figure in it, sorted by file name and captioned with it."""
    if not folder.is_dir():
        raise TfbenchError(f"--stability {folder}: no such folder")
    table = folder / STABILITY_TABLE
    parts = [_csv_table(table)] if table.is_file() else []
    for path in sorted(folder.glob("*.png")):
        data = path.read_bytes()
        if not data.startswith(PNG_SIGNATURE):
            parts.append(f'<p class="missing">{html.escape(path.name)}: not a PNG file</p>')
            continue
        caption = html.escape(path.stem.replace("_", " "))
        parts.append(f"<figure>{_img(data, path.stem)}<figcaption>{caption}</figcaption></figure>")
    return "".join(parts) or f'<p class="missing">No table or PNG figure in {html.escape(str(folder))}.</p>'


def render_html(
    table: ReportTable, title: str = "tfbench report", stability: str | Path | None = None
) -> str:
    """The whole page as one string; `stability` is a `tfbench stability` output folder to embed."""
    results = {row.name: _results(row) for row in table.rows}
    missing = [
        f'<p class="missing">{html.escape(row.name)}: no results.parquet in '
        f"{html.escape(str(row.run_dir))}</p>"
        for row in table.rows
        if results[row.name] is None
    ]
    paper_note = ""
    if table.paper:
        source = table.paper_source or "none for the datasets of these runs"
        paper_note = f"<p>paper: published value ({html.escape(source)}); Δ = run − paper.</p>"
    sections: Sequence[str] = (
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Results</h2>",
        table_html(table),
        "<p>Mean over videos with its 95% bootstrap CI; best per column in bold.</p>",
        paper_note,
        *missing,
        *(("<h2>Sync-expert stability</h2>", stability_html(Path(stability))) if stability else ()),
        "<h2>Distributions across videos</h2>",
        distributions_html(table, results),
        "<h2>Frames</h2>",
        frame_grid_html(table, results),
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(s for s in sections if s)
        + "\n</body></html>\n"
    )


def write_html(table: ReportTable, path: str | Path, stability: str | Path | None = None) -> Path:
    """Write the page atomically."""
    from tfbench.fileio import atomic_write_text

    return atomic_write_text(path, render_html(table, stability=stability))
