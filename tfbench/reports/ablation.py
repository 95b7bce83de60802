"""`tfbench ablate`: train what each row of a grid needs, evaluate every row with `ours`, render the table.

The work folder `OUT` holds

    stages/<stage>-<key>/   one `train_stage` folder per distinct stage (last.pt, config.yaml, done.json)
    rows/<row id>-<key>/    the row's run folder, as `tfbench run` writes it
    ablation.md, ablation.tex, ablation.csv

Sharing: a stage's key hashes everything that changes what it trains: the config as that stage reads it,
its step count, the keys of the checkpoints it starts from, the training data and the `--weights` files. The
config "as the stage reads it" is the grid's base config with only the fields the stage uses taken from the
row (`STAGE_FIELDS`): AVSyncNet reads its own section and the training settings, so rows that differ only in
`ablation:` switches share one AVSyncNet; G_S also reads the generator, discriminator and loss sections and
the audio-encoder switch, so rows D, E and G share one G_S; G_L reads everything. Rows with equal keys get
one folder, trained once, and the stage config saved in it is that view (its other sections are the base's).

Resuming: a stage folder whose `done.json` names its key is finished and skipped without loading any data;
one without it (a killed run) is continued by `train_stage` from its last checkpoint; a row whose run folder
has summary.json is finished; any other row is resumed by the runner, sample by sample.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfbench.benchmark.distributed import DistributedContext
from tfbench.benchmark.options import RunOptions
from tfbench.benchmark.runner import Runner
from tfbench.data.crop_cache import CropCache
from tfbench.data.faces import preset
from tfbench.errors import TfbenchError
from tfbench.fileio import atomic_write_text
from tfbench.models.config import ModelConfig, config_from_dict, config_to_dict
from tfbench.models.training import CHECKPOINT_NAME, TrainData, prepare_data, train_stage
from tfbench.models.training.checkpoint import STAGE_NAMES, results_settings
from tfbench.reports.grid import Grid, GridRow
from tfbench.reports.published import load_published
from tfbench.reports.tables import ReportTable, TableEntry, render, table_of_entries
from tfbench.weights import sha256_file

__all__ = ["STAGE_FIELDS", "AblationOutcome", "StagePlan", "ablation_table", "plan_rows", "run_ablation"]

STAGE_FIELDS: dict[str, tuple[str, ...] | None] = {
    "avsyncnet": ("avsyncnet", "train.avsyncnet"),
    "silent": ("avsyncnet", "generator", "discriminator", "loss", "ablation.audio_encoder", "train.silent"),
    "generator": None,  # the whole row config
}
"""The config fields (dotted) each stage reads besides the shared `train.*` settings; None: all of them."""
DONE_NAME = "done.json"
TABLE_FILES = {"md": "ablation.md", "latex": "ablation.tex", "csv": "ablation.csv"}
Log = Callable[[str], None]


@dataclass(frozen=True)
class StagePlan:
    """One stage to train: its config view, its key, and what it starts from (earlier plans, or files)."""

    stage: str
    key: str
    config: ModelConfig
    sources: Mapping[str, StagePlan | Path] = field(default_factory=dict)

    @property
    def folder(self) -> str:
        return f"{self.stage}-{self.key}"


@dataclass(frozen=True)
class RowPlan:
    """One row: its generator stage and the key of its evaluation."""

    row: GridRow
    generator: StagePlan
    key: str

    @property
    def folder(self) -> str:
        return f"{self.row.id}-{self.key}"


@dataclass
class AblationOutcome:
    """What `run_ablation` did: stage folders trained, rows evaluated, and every row's run folder."""

    trained: list[str] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)
    run_dirs: dict[str, Path] = field(default_factory=dict)


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def stage_config(stage: str, row: ModelConfig, base: ModelConfig) -> ModelConfig:
    """`base` with the fields `stage` reads (`STAGE_FIELDS` and the shared `train.*`) taken from `row`."""
    fields = STAGE_FIELDS[stage]
    if fields is None:
        return row
    view, source = config_to_dict(base), config_to_dict(row)
    shared = tuple(f"train.{key}" for key in source["train"] if key not in STAGE_NAMES)
    for dotted in (*fields, *shared):
        *parents, leaf = dotted.split(".")
        src, dst = source, view
        for part in parents:
            src, dst = src[part], dst[part]
        dst[leaf] = copy.deepcopy(src[leaf])
    return config_from_dict(view, source=f"the {stage} stage's view of a grid row")


def _source_id(source: StagePlan | Path) -> str:
    if isinstance(source, StagePlan):
        return source.key
    if not source.is_file():
        raise TfbenchError(f"--avsyncnet {source}: no such file")
    return sha256_file(source)


def plan_rows(grid: Grid, overrides: Mapping[str, Path] | None = None) -> list[RowPlan]:
    """The stages and evaluations of every row; equal stages of different rows are one `StagePlan`."""
    data = grid.data
    if data.dataset is None or data.root is None:
        raise TfbenchError(f"{grid.source}: the grid gives no dataset or root (pass --dataset and --root)")
    weights = {name: str(path) for name, path in sorted((overrides or {}).items())}
    record = {
        "dataset": data.dataset,
        "root": str(Path(data.root).resolve()),
        **{name: getattr(data, name) for name in ("train_split", "val_split", "train_limit", "detector")},
    }
    plans: dict[str, StagePlan] = {}

    def plan(stage: str, row: ModelConfig, sources: dict[str, StagePlan | Path]) -> StagePlan:
        config = stage_config(stage, row, grid.base)
        payload = {
            "stage": stage,
            "config": results_settings(config),
            "steps": getattr(config.train, stage).steps,
            "sources": {name: _source_id(source) for name, source in sources.items()},
            "data": record,
            "weights": weights,
        }
        made = StagePlan(stage, _hash(payload), config, sources)
        return plans.setdefault(made.key, made)

    rows = []
    for row in grid.rows:
        avsyncnet = grid.avsyncnet or plan("avsyncnet", row.config, {})
        sources: dict[str, StagePlan | Path] = {"avsyncnet": avsyncnet}
        if row.config.ablation.use_silent_generator:
            sources["silent"] = plan("silent", row.config, {"avsyncnet": avsyncnet})
        generator = plan("generator", row.config, sources)
        evaluation = {
            "generator": generator.key,
            "dataset": data.dataset,
            "root": record["root"],
            "split": data.eval_split,
            "limit": data.eval_limit,
            "detector": data.detector,
            "metrics": list(grid.metrics),
            "weights": weights,
        }
        rows.append(RowPlan(row, generator, _hash(evaluation)))
    return rows


def _in_order(rows: list[RowPlan]) -> list[StagePlan]:
    """Every stage the rows need, each once, each after the stages it starts from."""
    ordered: dict[str, StagePlan] = {}

    def visit(plan: StagePlan) -> None:
        for source in plan.sources.values():
            if isinstance(source, StagePlan):
                visit(source)
        ordered.setdefault(plan.key, plan)

    for row in rows:
        visit(row.generator)
    return list(ordered.values())


class _Data:
    """The training data, prepared on first use (a finished grid never crops a face) per (seed, fraction)."""

    def __init__(self, grid: Grid, cache: CropCache) -> None:
        self.grid, self.cache = grid, cache
        self.prepared: dict[tuple[int, float], TrainData] = {}

    def get(self, config: ModelConfig) -> TrainData:
        data, train = self.grid.data, config.train
        key = (train.seed, train.val_fraction)
        if key not in self.prepared:
            assert data.dataset is not None and data.root is not None
            settings = preset("wav2lip", detector=data.detector, coverage="full", min_track=0)
            self.prepared[key] = prepare_data(
                data.dataset,
                data.root,
                data.train_split,
                settings,
                self.cache,
                seed=train.seed,
                val_split=data.val_split,
                val_fraction=train.val_fraction,
                limit=data.train_limit,
                capacity=train.cache_clips,
            )
        return self.prepared[key]


def run_ablation(
    grid: Grid,
    out: str | Path,
    *,
    device: str = "cpu",
    overrides: Mapping[str, Path] | None = None,
    log: Log | None = None,
) -> AblationOutcome:
    """Train the stages the rows need and evaluate every row into `out`, skipping finished work."""
    out, overrides = Path(out).resolve(), dict(overrides or {})  # run configs record absolute paths
    say = log or (lambda message: None)
    rows = plan_rows(grid, overrides)
    outcome = AblationOutcome()
    data = _Data(grid, CropCache(weights=overrides, device=device))

    def checkpoint(source: StagePlan | Path) -> Path:
        return source if isinstance(source, Path) else out / "stages" / source.folder / CHECKPOINT_NAME

    needed_by: dict[str, list[str]] = {}
    for row in rows:
        for needed in _in_order([row]):
            needed_by.setdefault(needed.key, []).append(row.row.id)
    for plan in _in_order(rows):
        folder = out / "stages" / plan.folder
        users = ", ".join(needed_by[plan.key])
        if _finished(folder, plan.key):
            say(f"{plan.folder} (rows {users}): finished, skipped")
            continue
        say(f"{plan.folder} (rows {users}): training to step {getattr(plan.config.train, plan.stage).steps}")
        result = train_stage(
            plan.stage,
            plan.config,
            data.get(plan.config),
            folder,
            device=device,
            sources={name: checkpoint(source) for name, source in plan.sources.items()},
            overrides=overrides,
        )
        done = {"stage": plan.stage, "key": plan.key, "step": result.step, "metrics": result.metrics}
        atomic_write_text(folder / DONE_NAME, json.dumps(done, indent=1))
        outcome.trained.append(plan.folder)
    for row in rows:
        run_dir = out / "rows" / row.folder
        outcome.run_dirs[row.row.id] = run_dir
        if (run_dir / "summary.json").is_file():
            say(f"row {row.row.id}: evaluated before, skipped")
            continue
        say(f"row {row.row.id}: evaluating on {grid.data.dataset}/{grid.data.eval_split}")
        _evaluate(grid, run_dir, checkpoint(row.generator), device, overrides)
        outcome.evaluated.append(row.row.id)
    return outcome


def _finished(folder: Path, key: str) -> bool:
    path = folder / DONE_NAME
    if not (path.is_file() and (folder / CHECKPOINT_NAME).is_file()):
        return False
    try:
        return bool(json.loads(path.read_text(encoding="utf-8")).get("key") == key)
    except json.JSONDecodeError:
        return False


def _evaluate(grid: Grid, run_dir: Path, generator: Path, device: str, overrides: Mapping[str, Path]) -> None:
    """Run `ours` with the row's checkpoint over the evaluation split (the runner resumes a partial run)."""
    data = grid.data
    assert data.dataset is not None and data.root is not None
    options = RunOptions(
        model="ours",
        dataset=data.dataset,
        root=data.root,
        split=data.eval_split,
        metrics=grid.metrics,
        out=run_dir,
        limit=data.eval_limit,
        detector=data.detector,
        overrides={**overrides, "ours": generator},
    )
    Runner(options, DistributedContext(device=device)).run()


def ablation_table(grid: Grid, run_dirs: Mapping[str, Path], paper: bool = False) -> ReportTable:
    """Rows = the grid's rows (labels), columns = metrics; with `paper`, the published ablation numbers of
    each row's `paper_row` beside (published on LRS2; `-` where the paper gives none for that row)."""
    published = load_published()
    entries = []
    for row in grid.rows:
        values = published.ablation_values.get(row.paper_row or "") if paper else None
        entries.append(TableEntry(run_dirs[row.id], row.label, values))
    source = None
    if paper:
        note = published.ablation_values_note
        source = f"{published.paper}, ablation on LRS2, data {published.data_version}; {note}"
    return table_of_entries(entries, paper, source, row_header="row")


def write_tables(table: ReportTable, out: str | Path) -> list[Path]:
    """The table as OUT/ablation.md, .tex and .csv (each written atomically)."""
    return [atomic_write_text(Path(out) / name, render(table, fmt)) for fmt, name in TABLE_FILES.items()]
