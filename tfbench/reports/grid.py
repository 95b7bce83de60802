"""Ablation grids: rows of training/inference configs, read from YAML for `tfbench ablate --grid`.

A grid names a base model config (a bundled name such as `paper` or `tiny`, or a YAML path relative to the
grid file), the data to train and evaluate on, the metrics, and its rows. Each row is the base config with
`overrides` merged in (the grid's own `overrides` first, then the row's): usually the `ablation:` switches,
but any config field may change (train steps and batch sizes included, so a test grid can be tiny). Merging
is by key, nested mappings recursively, and the merged config goes through the strict config parser, so a
misspelt key fails at load time with the grid file and row in the message instead of silently giving a
second copy of the base row.

    schema_version: 1
    name: my_grid
    base: tiny
    data: {dataset: synthetic, root: data, train_split: test, eval_split: test, detector: none}
    metrics: [psnr, ssim]
    avsyncnet: null              # an existing AVSyncNet checkpoint: no AVSyncNet stage is trained
    overrides: {train: {generator: {steps: 10}}}
    rows:
      - {id: full, label: "full model", paper_row: G}
      - {id: no_gs, label: "without G_S", overrides: {ablation: {use_silent_generator: false}}}

`paper_row` links a row to the published ablation row of that letter (`published.yaml`), shown with
`--paper`. The shipped grid `paper` (grids/paper_ablation.yaml) holds the paper's rows A..G that can be built.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tfbench.errors import TfbenchError
from tfbench.models.config import BUNDLED_CONFIGS, ModelConfig, config_from_dict, config_to_dict, load_config
from tfbench.reports.published import load_published

__all__ = ["BUNDLED_GRIDS", "Grid", "GridData", "GridError", "GridRow", "load_grid", "parse_grid"]

GRID_SCHEMA_VERSION = 1
BUNDLED_GRIDS = {"paper": "paper_ablation.yaml"}
"""Grid names `load_grid` resolves to files shipped in `tfbench/reports/grids/`."""
_ROW_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_TOP_KEYS = ("schema_version", "name", "title", "base", "data", "metrics", "avsyncnet", "overrides", "rows")
_ROW_KEYS = ("id", "label", "paper_row", "overrides")


class GridError(TfbenchError):
    """An ablation grid file with an unknown key, a bad value, or a row whose config does not parse."""


@dataclass(frozen=True)
class GridData:
    """Where the rows train and what they are evaluated on; a limit keeps the first N clips (by id)."""

    dataset: str | None = None
    root: Path | None = None
    train_split: str = "train"
    val_split: str | None = None
    eval_split: str = "test"
    detector: str = "s3fd"
    train_limit: int | None = None
    eval_limit: int | None = None


@dataclass(frozen=True)
class GridRow:
    """One row: its id (folder names), its label (the table), its full config, its published row letter."""

    id: str
    label: str
    config: ModelConfig
    paper_row: str | None = None


@dataclass(frozen=True)
class Grid:
    """A validated grid. `base` is the base config with the grid-wide overrides, before any row's."""

    name: str
    title: str
    source: str
    base: ModelConfig
    data: GridData
    metrics: tuple[str, ...]
    rows: tuple[GridRow, ...]
    avsyncnet: Path | None = None


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise GridError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _known_keys(raw: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in raw:
        if key not in known:
            raise GridError(f"{where}: unknown key {key!r}; known keys: {', '.join(known)}")


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `override` merged in: nested mappings key by key, anything else replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _path(value: Any, folder: Path | None, where: str) -> Path | None:
    """A path field: None stays None; a relative path is taken from the grid file's folder."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise GridError(f"{where}: expected a path, got {value!r}")
    path = Path(value).expanduser()
    return path if path.is_absolute() or folder is None else folder / path


def _data(raw: Any, folder: Path | None, where: str) -> GridData:
    raw = _mapping(raw or {}, where)
    fields = {f.name: f for f in dataclasses.fields(GridData)}
    _known_keys(raw, tuple(fields), where)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "root":
            values[key] = _path(value, folder, f"{where}.root")
        elif key.endswith("_limit"):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise GridError(f"{where}.{key}: expected a positive integer or null, got {value!r}")
            values[key] = value
        elif value is None and key in ("dataset", "val_split"):
            values[key] = None
        elif not isinstance(value, str) or not value:
            raise GridError(f"{where}.{key}: expected a name, got {value!r}")
        else:
            values[key] = value
    return GridData(**values)


def _base(raw: Any, folder: Path | None, where: str) -> ModelConfig:
    if not isinstance(raw, str) or not raw:
        raise GridError(
            f"{where}.base: expected a bundled config name ({', '.join(BUNDLED_CONFIGS)}) or a path"
        )
    if raw in BUNDLED_CONFIGS:
        return load_config(raw)
    path = _path(raw, folder, f"{where}.base")
    assert path is not None
    return load_config(path)


def _rows(raw: Any, base: ModelConfig, letters: Mapping[str, Any], where: str) -> tuple[GridRow, ...]:
    if not isinstance(raw, list) or not raw:
        raise GridError(f"{where}.rows: expected a non-empty list of rows")
    rows: list[GridRow] = []
    base_dict = config_to_dict(base)
    for i, item in enumerate(raw):
        spot = f"{where}.rows[{i}]"
        item = _mapping(item, spot)
        _known_keys(item, _ROW_KEYS, spot)
        row_id = str(item.get("id", ""))
        if not _ROW_ID.fullmatch(row_id):
            raise GridError(f"{spot}.id: {row_id!r} is not a folder-safe id (letters, digits, _ . -)")
        if any(r.id == row_id for r in rows):
            raise GridError(f"{spot}.id: {row_id!r} is used by another row")
        paper_row = item.get("paper_row")
        if paper_row is not None and str(paper_row) not in letters:
            raise GridError(
                f"{spot}.paper_row: {paper_row!r} is not a published ablation row ({', '.join(letters)})"
            )
        merged = _merge(base_dict, _mapping(item.get("overrides") or {}, f"{spot}.overrides"))
        config = config_from_dict(merged, source=f"{where} row {row_id!r}")
        label = str(item.get("label") or row_id)
        rows.append(GridRow(row_id, label, config, None if paper_row is None else str(paper_row)))
    return tuple(rows)


def parse_grid(data: Any, where: str, folder: Path | None = None) -> Grid:
    """Validate a parsed grid document; `folder` resolves its relative paths (None: the bundled grids)."""
    data = _mapping(data, where)
    _known_keys(data, _TOP_KEYS, where)
    if data.get("schema_version") != GRID_SCHEMA_VERSION:
        raise GridError(f"{where}: schema_version {data.get('schema_version')!r}, this tfbench reads 1")
    metrics = data.get("metrics")
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) and m for m in metrics):
        raise GridError(f"{where}.metrics: expected a non-empty list of metric names")
    shared = _mapping(data.get("overrides") or {}, f"{where}.overrides")
    merged = _merge(config_to_dict(_base(data.get("base"), folder, where)), shared)
    base = config_from_dict(merged, source=f"{where} overrides")
    letters = load_published().ablation_rows
    return Grid(
        name=str(data.get("name") or Path(where).stem),
        title=str(data.get("title") or ""),
        source=where,
        base=base,
        data=_data(data.get("data"), folder, f"{where}.data"),
        metrics=tuple(metrics),
        rows=_rows(data.get("rows"), base, letters, where),
        avsyncnet=_path(data.get("avsyncnet"), folder, f"{where}.avsyncnet"),
    )


def load_grid(source: str | Path) -> Grid:
    """The grid of a bundled name (`"paper"`) or of a YAML file."""
    if isinstance(source, str) and source in BUNDLED_GRIDS:
        where = f"tfbench/reports/grids/{BUNDLED_GRIDS[source]}"
        text = resources.files("tfbench.reports").joinpath("grids", BUNDLED_GRIDS[source]).read_text("utf-8")
        folder = None
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise GridError(f"grid {str(source)!r}: no such file (bundled grids: {', '.join(BUNDLED_GRIDS)})")
        where, text, folder = str(path), path.read_text(encoding="utf-8"), path.parent
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GridError(f"{where}: not valid YAML ({exc})") from None
    return parse_grid(data, where, folder)
