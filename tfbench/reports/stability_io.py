"""The files `tfbench stability` writes into its output folder (each atomically), and its curves reader.

- `stability.md`: the per-expert table and the reliability table, with the threshold and settings;
- `stability.csv` (per expert), `reliability.csv` (per expert, clip score and perturbation);
- `stability.json`: settings, clips used and left out (with reasons), both tables;
- `curves.json` ({"curves": {expert: {sample id: [similarity per window]}}}) and `curves.csv` (long form):
  the per-window similarities, what the figure plots and the HTML report can embed (`read_curves`);
- `pairs.csv`: every scored in-sync and off-sync pair, its part (calibration / evaluation) and similarity;
- `figure1.png` and `figure1.pdf` (`stability_plot`).
Numbers that do not exist (an expert without LSE-C) are `-` in Markdown, empty in CSV and null in JSON.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from tfbench.errors import TfbenchError
from tfbench.fileio import atomic_write_text
from tfbench.reports.stability import StabilityReport
from tfbench.reports.stability_plot import write_figure
from tfbench.reports.stability_stats import ExpertStats, Pair, ReliabilityRow

__all__ = ["CURVES_FILE", "FIGURE_NAME", "read_curves", "write_report"]

CURVES_FILE = "curves.json"
FIGURE_NAME = "figure1"

_STATS_HEADERS = {
    "expert": "expert",
    "n_clips": "clips",
    "n_windows": "windows",
    "mean": "mean cos",
    "variance": "variance",
    "cv": "CV",
    "within_clip_variance": "within-clip variance",
    "lse_c_variance": "variance of LSE-C",
    "threshold": "threshold",
    "accuracy": "accuracy",
    "calibration_accuracy": "calibration accuracy",
    "n_evaluation_pairs": "evaluation pairs",
}
_RELIABILITY_HEADERS = {
    "expert": "expert",
    "score": "clip score",
    "perturbation": "perturbation",
    "mean_abs_change": "mean |change| ↓",
    "relative_change": "|change| / clip std ↓",
    "n_clips": "clips",
}


def _cell(value: Any) -> str:
    """A Markdown cell: 4 significant digits for real numbers, `-` for a missing one."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _markdown(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _csv(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows([["" if _cell(v) == "-" else v for v in row] for row in rows])
    return buffer.getvalue()


def _json_safe(value: Any) -> Any:
    """NaN -> None, recursively (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _values(row: ExpertStats | ReliabilityRow | Pair) -> list[Any]:
    return [getattr(row, f.name) for f in fields(row)]


def _markdown_report(report: StabilityReport) -> str:
    options = report.options
    used = ", ".join(clip.sample_id for clip in report.clips)
    parts = [
        f"# Sync expert stability: {options.dataset} {options.split}\n",
        f"{len(report.clips)} ground-truth clips (seed {options.seed}): {used}.",
        f"Similarity: cosine of the video and audio embeddings of each 5-frame window at offset 0. "
        f"Accuracy: in-sync windows vs the same clip's windows with non-overlapping audio, threshold chosen "
        f"on {sum(p == 'calibration' for p in report.parts.values())} calibration clip(s), accuracy on the "
        f"other {sum(p == 'evaluation' for p in report.parts.values())}. Variances have ddof = 1; the "
        f"variance of LSE-C exists for syncnet only (the LSE metric's scorer).\n",
        _markdown(list(_STATS_HEADERS.values()), [_values(s) for s in report.stats]),
    ]
    if report.reliability:
        parts += [
            "\n## Metric reliability (mean change of each clip score under a slight perturbation)\n",
            *[f"- {name}: {text}" for name, text in options.record()["perturbations"].items()],
            "",
            _markdown(list(_RELIABILITY_HEADERS.values()), [_values(r) for r in report.reliability]),
        ]
    if report.skipped:
        parts += ["\n## Clips left out\n", *[f"- {sample_id}: {why}" for sample_id, why in report.skipped]]
    return "\n".join(parts) + "\n"


def _json_document(report: StabilityReport) -> str:
    document = {
        "settings": report.options.record(),
        "clips": [clip.sample_id for clip in report.clips],
        "parts": report.parts,
        "skipped": [{"sample_id": s, "reason": why} for s, why in report.skipped],
        "experts": [asdict(s) for s in report.stats],
        "reliability": [asdict(r) for r in report.reliability],
    }
    return json.dumps(_json_safe(document), indent=2) + "\n"


def write_report(report: StabilityReport, out: str | Path) -> dict[str, Path]:
    """Write every file of the module docstring into `out`; returns them by name."""
    out = Path(out)
    curves = report.curves()
    curve_rows = [
        [expert, clip, window, value]
        for expert, by_clip in curves.items()
        for clip, values in by_clip.items()
        for window, value in enumerate(values)
    ]
    texts = {
        "stability.md": _markdown_report(report),
        "stability.csv": _csv(list(_STATS_HEADERS), [_values(s) for s in report.stats]),
        "reliability.csv": _csv(list(_RELIABILITY_HEADERS), [_values(r) for r in report.reliability]),
        "pairs.csv": _csv([f.name for f in fields(Pair)], [_values(p) for p in report.pairs]),
        "curves.csv": _csv(["expert", "sample_id", "window", "similarity"], curve_rows),
        CURVES_FILE: json.dumps({"curves": curves}, indent=1) + "\n",
        "stability.json": _json_document(report),
    }
    written = {name: atomic_write_text(out / name, text) for name, text in texts.items()}
    for path in write_figure(curves, out / FIGURE_NAME, report.options.figure_clips):
        written[path.name] = path
    return written


def read_curves(folder: str | Path) -> dict[str, dict[str, list[float]]]:
    """expert -> sample id -> per-window similarities, from the `curves.json` of a stability folder."""
    path = Path(folder) / CURVES_FILE
    if not path.is_file():
        raise TfbenchError(f"{path}: no stability curves there (run `tfbench stability --out {folder}`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        curves = data["curves"]
        return {e: {c: [float(v) for v in vs] for c, vs in by_clip.items()} for e, by_clip in curves.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TfbenchError(f"{path}: not a stability curves file ({type(exc).__name__}: {exc})") from exc
