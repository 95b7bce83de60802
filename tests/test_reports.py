"""Reports: published numbers as validated data; Markdown/LaTeX/CSV tables; the self-contained HTML page."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import tfbench.cli.report  # noqa: F401  (registers the command)
from tfbench.benchmark.results import RunStore
from tfbench.benchmark.summary import write_summary
from tfbench.cli.app import app
from tfbench.errors import TfbenchError
from tfbench.media import write_video
from tfbench.reports import published as published_mod
from tfbench.reports.html import frame_grid_html
from tfbench.reports.published import PublishedDataError, load_published, parse_published
from tfbench.reports.tables import build_table, render, to_csv, to_latex, to_markdown

DIRECTIONS = {"psnr": True, "lse_d": False}


def make_run(folder: Path, model: str, dataset: str, psnr: float, lse_d: float, video: bool = True) -> Path:
    """A finished run of 3 samples, each with a tiny mp4 (unless `video` is False) and its source video
    (a grey ramp over the frames, in folder/source), and a dataset FID."""
    store = RunStore(folder)
    store.open({"model": model, "dataset": dataset, "split": "test"})
    rng = np.random.default_rng(len(model))
    for i in range(3):
        output, source = f"videos/clip{i}.mp4", folder / "source" / f"clip{i}.mp4"
        if video:
            frames = np.full((4, 16, 16, 3), 40 * i + len(model) * 10, dtype=np.uint8)
            write_video(folder / output, frames, fps=25.0)
            ramp = np.linspace(60, 240, 4).astype(np.uint8)[:, None, None, None]
            write_video(source, np.broadcast_to(ramp, (4, 16, 16, 3)).copy(), fps=25.0)
        store.write_row(
            {
                "sample_id": f"clip{i}",
                "video": str(source),
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
        make_run(tmp_path / "run_a", "a_model", "lrs2", psnr=31.0, lse_d=7.5),
        make_run(tmp_path / "run_b", "b_model", "hdtf", psnr=28.0, lse_d=6.5),
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
    # each ablation row's numbers come from the statements above, never repeated: G = after adding L_at,
    # D = after adding G_S and before adding L_ss, B = the frozen-encoder row = before adding G_S
    assert data.ablation_values["G"] == {"psnr": 32.75, "fid": 4.02}
    assert data.ablation_values["D"] == {"lmd": 1.741, "lse_c": 7.752, "psnr": 27.18, "ssim": 0.872}
    assert data.ablation_values["B"] == {"lse_c": 7.271, "lse_d": 7.106, "lmd": 2.325}
    assert set(data.ablation_values) == {"A", "B", "D", "E", "G"}


def test_published_loader_rejects_bad_data() -> None:
    raw = yaml.safe_load((Path(published_mod.__file__).parent / "published.yaml").read_text())
    raw["tables"][0]["rows"][0]["values"]["BLEU"] = 1.0
    with pytest.raises(PublishedDataError, match="unknown metric 'BLEU'"):
        parse_published(raw)
    raw = yaml.safe_load((Path(published_mod.__file__).parent / "published.yaml").read_text())
    raw["tables"][0]["rows"][0]["values"]["PSNR"] = None  # missing without a note
    with pytest.raises(PublishedDataError, match="needs a note"):
        parse_published(raw)
    raw = yaml.safe_load((Path(published_mod.__file__).parent / "published.yaml").read_text())
    raw["ablation_row_values"]["B"].append({"change": "adding G_S", "side": "after"})
    with pytest.raises(PublishedDataError, match=r"lmd 1\.741 disagrees with 2\.325"):
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
    no_videos = make_run(tmp_path / "run_c", "c_model", "lrs2", psnr=30.0, lse_d=7.0, video=False)
    page = render(build_table([*runs, no_videos], paper=True), "html")
    assert page.count("data:image/png;base64,") >= 3  # two distributions and a frame grid
    assert 'src="http' not in page and "<link" not in page and "<script" not in page
    assert "video missing" in page and "c_model" in page and "a_model" in page
    assert "rows: ground truth, a_model.</p>" in page  # b_model's clip0 video is gone; c_model has none


def test_html_frame_grid_shows_ground_truth_and_runs_on_the_same_frames(runs: tuple[Path, Path]) -> None:
    table = build_table(runs)
    results = {row.name: pd.read_parquet(row.run_dir / "results.parquet") for row in table.rows}
    page = frame_grid_html(table, results, n=2)
    assert "frames 0, 3; rows: ground truth, a_model, b_model." in page
    grid = plt.imread(io.BytesIO(base64.b64decode(page.split("base64,")[1].split('"')[0])))
    assert grid.ndim == 3 and grid.shape[0] > grid.shape[1]  # 3 rows x 2 frames


def test_html_embeds_stability_figures(tmp_path: Path, runs: tuple[Path, Path]) -> None:
    figures = tmp_path / "stability"
    figures.mkdir()
    for name in ("similarity_curves", "similarity_distribution"):
        fig = plt.figure(figsize=(2, 1))
        fig.savefig(figures / f"{name}.png")
        plt.close(fig)
    (figures / "broken.png").write_bytes(b"not a png")
    (figures / "stability.csv").write_text("expert,mean,cv\nsyncnet,0.123456,\navsyncnet,0.5,0.25\n")
    page = render(build_table(runs), "html", stability=figures)
    assert "<th>expert</th><th>mean</th><th>cv</th>" in page
    assert "<tr><td>syncnet</td><td>0.1235</td><td>-</td></tr>" in page
    assert "<figcaption>similarity curves</figcaption>" in page
    assert "<figcaption>similarity distribution</figcaption>" in page
    assert "broken.png: not a PNG file" in page
    assert page.index("Sync-expert stability") < page.index("Distributions across videos")
    with pytest.raises(TfbenchError, match="no such folder"):
        render(build_table(runs), "html", stability=tmp_path / "missing")
    with pytest.raises(TfbenchError, match="use it with --format html"):
        render(build_table(runs), "md", stability=figures)


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
    result = CliRunner().invoke(app, ["report", str(runs[0]), "--stability", str(tmp_path)])
    assert result.exit_code == 2 and "use it with --format html" in result.output
