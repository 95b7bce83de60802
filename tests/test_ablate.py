"""`tfbench ablate`: grid files, stage sharing between rows, a two-row grid end to end, a rerun, the table."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

import tfbench.cli.ablate  # noqa: F401  (registers the command)
from tfbench.cli.app import app
from tfbench.data.synthetic import SynthConfig, write_dataset
from tfbench.errors import TfbenchError
from tfbench.models.config import ABLATION_ROWS
from tfbench.models.training import load_checkpoint
from tfbench.reports import ablation as ablation_mod
from tfbench.reports.ablation import StagePlan, ablation_table, plan_rows, run_ablation
from tfbench.reports.grid import load_grid
from tfbench.reports.tables import to_markdown

FAST = {  # tiny.yaml at CPU-test sizes: one step per stage, no perceptual term (a random VGG19 is slow)
    "loss": {"weights": {"per": 0.0}},
    "train": {
        "val_windows": 2,
        "val_interval": 1000,
        "checkpoint_interval": 1000,
        "silent": {"steps": 1, "batch_size": 1},
        "generator": {"steps": 1, "batch_size": 1},
    },
}


def _grid_file(folder: Path, avsyncnet: Path | None, rows: list[dict[str, Any]]) -> Path:
    grid = {
        "schema_version": 1,
        "name": "two_rows",
        "base": "tiny",
        "data": {
            "dataset": "synthetic",
            "root": "data",
            "train_split": "test",
            "eval_split": "test",
            "detector": "none",
        },
        "metrics": ["psnr", "ssim"],
        "avsyncnet": None if avsyncnet is None else str(avsyncnet),
        "overrides": FAST,
        "rows": rows,
    }
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(grid, sort_keys=False), encoding="utf-8")
    return path


TWO_ROWS = [
    {"id": "full", "label": "full model", "paper_row": "G"},
    {"id": "no_gs", "label": "without G_S", "overrides": {"ablation": {"use_silent_generator": False}}},
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, trained_avsyncnet_path: Path) -> Iterator[Path]:
    """A synthetic dataset (1 speaker x 3 clips of 2 s) beside a two-row grid file that reuses the session's
    trained AVSyncNet; one torch thread and a private TFBENCH_HOME for the module."""
    base = tmp_path_factory.mktemp("ablate")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFBENCH_HOME", str(base / "home"))
        write_dataset(base / "data", SynthConfig("lrs2", speakers=1, clips=3, seconds=2.0, seed=7))
        _grid_file(base, trained_avsyncnet_path, TWO_ROWS)
        yield base
    torch.set_num_threads(threads)


def _key(source: StagePlan | Path) -> str:
    return source.key if isinstance(source, StagePlan) else str(source)


def _md_rows(text: str) -> dict[str, dict[str, str]]:
    lines = [
        [c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")
    ]
    return {cells[0]: dict(zip(lines[0][1:], cells[1:], strict=True)) for cells in lines[2:]}


# --------------------------------------------------------------------------- grid files and plans
def test_paper_grid_is_the_ablation_rows_and_shares_stages(tmp_path: Path) -> None:
    grid = load_grid("paper")
    assert [r.id for r in grid.rows] == list(ABLATION_ROWS)
    assert all(r.config.ablation == ABLATION_ROWS[r.id] and r.paper_row == r.id for r in grid.rows)
    with pytest.raises(TfbenchError, match="--root"):
        plan_rows(grid)
    plans = {p.row.id: p for p in plan_rows(replace(grid, data=replace(grid.data, root=tmp_path)))}
    sources = {row: p.generator.sources for row, p in plans.items()}
    shared = {
        name: {_key(s[name]) for s in sources.values() if name in s} for name in ("avsyncnet", "silent")
    }
    assert len(shared["avsyncnet"]) == 1 and len(shared["silent"]) == 1  # one AVSyncNet, one G_S
    assert [row for row, s in sources.items() if "silent" in s] == ["D", "E", "G"]
    assert len({p.generator.key for p in plans.values()}) == len({p.key for p in plans.values()}) == 5


def test_grid_errors_name_the_file_and_row(tmp_path: Path) -> None:
    bad = [{"id": "x", "overrides": {"ablation": {"sync_los": "plain"}}}]
    with pytest.raises(TfbenchError, match=r"grid\.yaml row 'x'.*did you mean 'ablation\.sync_loss'"):
        load_grid(_grid_file(tmp_path, None, bad))
    with pytest.raises(TfbenchError, match="used by another row"):
        load_grid(_grid_file(tmp_path, None, [{"id": "x"}, {"id": "x"}]))
    with pytest.raises(TfbenchError, match="not a published ablation row"):
        load_grid(_grid_file(tmp_path, None, [{"id": "x", "paper_row": "Z"}]))
    with pytest.raises(TfbenchError, match="no such file"):
        load_grid(tmp_path / "missing.yaml")


# --------------------------------------------------------------------------- a two-row grid end to end
@pytest.fixture(scope="module")
def first_run(workspace: Path) -> ablation_mod.AblationOutcome:
    return run_ablation(load_grid(workspace / "grid.yaml"), workspace / "out")


def test_two_row_grid_trains_each_stage_once_and_makes_a_two_row_table(
    workspace: Path, first_run: ablation_mod.AblationOutcome
) -> None:
    # the given AVSyncNet is used as is; one G_S (only "full" needs it) and one G_L per row
    assert [name.split("-")[0] for name in first_run.trained] == ["silent", "generator", "generator"]
    assert first_run.evaluated == ["full", "no_gs"]
    full = load_checkpoint(workspace / "out" / "stages" / first_run.trained[1] / "last.pt", "generator")
    assert full["step"] == 1 and full["sources"]["silent"].endswith(f"{first_run.trained[0]}/last.pt")
    no_gs = load_checkpoint(workspace / "out" / "stages" / first_run.trained[2] / "last.pt", "generator")
    assert "silent" not in no_gs["sources"] and no_gs["config"]["ablation"]["use_silent_generator"] is False
    grid = load_grid(workspace / "grid.yaml")
    rows = _md_rows(to_markdown(ablation_table(grid, first_run.run_dirs, paper=True)))
    assert list(rows) == ["full model", "without G_S"]
    assert rows["full model"]["psnr paper"] == "32.75" and rows["without G_S"]["psnr paper"] == "-"
    for label, row_id in (("full model", "full"), ("without G_S", "no_gs")):
        summary = pd.read_json(first_run.run_dirs[row_id] / "summary.json", typ="series")
        mean = summary["metrics"]["psnr"]["mean"]
        assert float(rows[label]["psnr ↑"].split()[0].strip("*")) == pytest.approx(mean, abs=0.006)


def test_rerun_skips_every_row_and_trains_nothing(
    workspace: Path, first_run: ablation_mod.AblationOutcome, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished grid must not train or evaluate again")

    monkeypatch.setattr(ablation_mod, "train_stage", refuse)
    monkeypatch.setattr(ablation_mod, "Runner", refuse)
    monkeypatch.setattr(ablation_mod, "prepare_data", refuse)
    args = [
        "ablate",
        "--grid",
        str(workspace / "grid.yaml"),
        "--out",
        str(workspace / "out"),
        "--format",
        "csv",
    ]
    result = CliRunner().invoke(app, [*args, "--paper"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(io.StringIO(result.stdout)).set_index("row")
    assert (
        list(table.index) == ["full model", "without G_S"]
        and table.loc["full model", "psnr_published"] == 32.75
    )
    assert "finished, skipped" in result.stderr and "evaluated before, skipped" in result.stderr
    for name in ("ablation.md", "ablation.tex", "ablation.csv"):
        assert (workspace / "out" / name).is_file()


def test_a_row_killed_during_evaluation_resumes_without_generating_again(
    workspace: Path, first_run: ablation_mod.AblationOutcome, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = first_run.run_dirs["no_gs"]
    (run_dir / "summary.json").unlink()  # killed after its samples, before the summary
    parts = {p: p.stat().st_mtime_ns for p in (run_dir / "parts").iterdir()}
    monkeypatch.setattr(ablation_mod, "prepare_data", lambda *a, **k: pytest.fail("no stage needs training"))
    outcome = run_ablation(load_grid(workspace / "grid.yaml"), workspace / "out")
    assert outcome.trained == [] and outcome.evaluated == ["no_gs"]
    assert (run_dir / "summary.json").is_file()
    assert {p: p.stat().st_mtime_ns for p in (run_dir / "parts").iterdir()} == parts  # no sample redone
