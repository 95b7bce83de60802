"""Reports: published numbers as validated data; Markdown/LaTeX/CSV tables; the self-contained HTML page."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import tfbench.cli.report  # noqa: F401  (registers the command)
from tfbench.benchmark.results import RunStore
from tfbench.benchmark.summary import write_summary
from tfbench.cli.app import app
from tfbench.media import write_video
from tfbench.reports import published as published_mod
from tfbench.reports.published import PublishedDataError, load_published, parse_published
from tfbench.reports.tables import build_table, render, to_csv, to_latex, to_markdown

DIRECTIONS = {"psnr": True, "lse_d": False}


def _run(folder: Path, model: str, dataset: str, psnr: float, lse_d: float, video: bool = True) -> Path:
    """A finished run of 3 samples, each with a tiny mp4 (unless `video` is False) and a dataset FID."""
    store = RunStore(folder)
    store.open({"model": model, "dataset": dataset, "split": "test"})
    rng = np.random.default_rng(len(model))
    for i in range(3):
        output = f"videos/clip{i}.mp4"
        if video:
            frames = np.full((4, 16, 16, 3), 40 * i + len(model) * 10, dtype=np.uint8)
            write_video(folder / output, frames, fps=25.0)
        store.write_row(
            {
                "sample_id": f"clip{i}",
                "status": "ok",
                "reason": None,
                "output": output,
                "psnr": psnr + rng.normal(0, 0.1),
                "lse_d": lse_d + rng.normal(0, 0.1),
            }
        )
    write_summary(store, store.write_results(), DIRECTIONS, {"fid": 4.5 if model == "a_model" else 6.0})
    return folder


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    # a: higher psnr (better), higher lse_d (worse); b: on another dataset, no published numbers
    return (
        _run(tmp_path / "run_a", "a_model", "lrs2", psnr=31.0, lse_d=7.5),
        _run(tmp_path / "run_b", "b_model", "hdtf", psnr=28.0, lse_d=6.5),
    )


def _md_rows(text: str) -> dict[str, dict[str, str]]:
    """Markdown table -> {run: {header: cell}}."""
    lines = [
        [c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")
    ]
    return {cells[0]: dict(zip(lines[0][1:], cells[1:], strict=True)) for cells in lines[2:]}


def test_published_numbers_are_the_papers() -> None:
    data = load_published()
    ours = data.reference("lrs2")
    assert ours is not None and ours.values["psnr"] == 32.64 and ours.values["ifc"] == 0.16
    talklip = data.table("lrs2_main").row("talklip")
    assert talklip.values["lse_c"] == 8.53 and talklip.values["psnr"] is None and talklip.notes["psnr"]
    assert data.direction("ifc") is False and data.direction("lse_c") is True
    assert data.ablation_rows["B"] is None and len(data.ablation_steps) == 7
    assert data.reference("hdtf") is None


def test_published_loader_rejects_bad_data() -> None:
    raw = yaml.safe_load((Path(published_mod.__file__).parent / "published.yaml").read_text())
    raw["tables"][0]["rows"][0]["values"]["BLEU"] = 1.0
    with pytest.raises(PublishedDataError, match="unknown metric 'BLEU'"):
        parse_published(raw)
    raw = yaml.safe_load((Path(published_mod.__file__).parent / "published.yaml").read_text())
    raw["tables"][0]["rows"][0]["values"]["PSNR"] = None  # missing without a note
    with pytest.raises(PublishedDataError, match="needs a note"):
        parse_published(raw)


def test_markdown_bold_is_direction_aware_and_parses_back(runs: tuple[Path, Path]) -> None:
    text = to_markdown(build_table(runs))
    assert "psnr ↑" in text and "lse_d ↓" in text and "fid ↓" in text
    rows = _md_rows(text)
    psnr_a, lse_d_a, fid_a = (rows["a_model"][h] for h in ("psnr ↑", "lse_d ↓", "fid ↓"))
    psnr_b, lse_d_b, fid_b = (rows["b_model"][h] for h in ("psnr ↑", "lse_d ↓", "fid ↓"))
    assert psnr_a.startswith("**") and not psnr_b.startswith("**")  # higher psnr wins
    assert lse_d_b.startswith("**") and not lse_d_a.startswith("**")  # lower lse_d wins
    assert fid_a == "**4.500**" and fid_b == "6.000"  # dataset-level, lower is better, no CI
    summary = RunStore(runs[0]).read_summary()["metrics"]["psnr"]
    mean, low, high = map(float, re.findall(r"-?\d+\.\d+", psnr_a))
    assert mean == pytest.approx(summary["mean"], abs=0.006) and low <= mean <= high


def test_paper_column_and_difference(runs: tuple[Path, Path]) -> None:
    table = build_table(runs, paper=True)
    rows = _md_rows(to_markdown(table))
    psnr_a, paper_a, diff_a = (rows["a_model"][h] for h in ("psnr ↑", "psnr paper", "psnr Δ"))
    assert paper_a == "32.64"
    assert float(diff_a) == pytest.approx(float(psnr_a.split()[0].strip("*")) - 32.64, abs=0.011)
    assert rows["b_model"]["psnr paper"] == rows["b_model"]["psnr Δ"] == "-"  # hdtf: no published value
    assert rows["a_model"]["fid paper"] == "3.83"
    frame = pd.read_csv(io.StringIO(to_csv(table)))
    a = frame.set_index("run").loc["a_model"]
    assert a["psnr_published"] == 32.64 and a["fid_published"] == 3.83
    assert a["psnr_diff"] == pytest.approx(a["psnr"] - 32.64)
    assert a["psnr_ci_low"] <= a["psnr"] <= a["psnr_ci_high"] and a["psnr_n"] == 3
    assert np.isnan(frame.set_index("run").loc["b_model", "psnr_published"])


def test_latex_is_escaped_and_well_formed(runs: tuple[Path, Path]) -> None:
    text = to_latex(build_table(runs, paper=True))
    assert r"a\_model" in text and r"lse\_d" in text and "a_model" not in text
    assert r"\toprule" in text and r"\textbf{" in text and r"$\uparrow$" in text
    assert text.count("{") == text.count("}")
    spec = re.search(r"\\begin\{tabular\}\{(\w+)\}", text)
    assert spec is not None
    body = [line for line in text.splitlines() if line.endswith(r"\\")]
    assert all(line.count(" & ") + 1 == len(spec.group(1)) for line in body)


def test_html_is_self_contained_and_tolerates_a_missing_video(
    tmp_path: Path, runs: tuple[Path, Path]
) -> None:
    (runs[1] / "videos" / "clip0.mp4").unlink()
    no_videos = _run(tmp_path / "run_c", "c_model", "lrs2", psnr=30.0, lse_d=7.0, video=False)
    page = render(build_table([*runs, no_videos], paper=True), "html")
    assert page.count("data:image/png;base64,") >= 3  # two distributions and a frame grid
    assert 'src="http' not in page and "<link" not in page and "<script" not in page
    assert "video missing" in page and "c_model" in page and "a_model" in page


def test_cli_report(tmp_path: Path, runs: tuple[Path, Path]) -> None:
    result = CliRunner().invoke(app, ["report", *map(str, runs), "--paper"])
    assert result.exit_code == 0, result.output
    assert "32.64" in result.output and "a_model" in result.output
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", *map(str, runs), "--format", "html", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("<!DOCTYPE html>")
    result = CliRunner().invoke(app, ["report", str(runs[0]), "--format", "pdf"])
    assert result.exit_code == 2 and "unknown report format" in result.output
