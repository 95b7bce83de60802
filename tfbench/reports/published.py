"""The paper's published numbers, loaded from the versioned `published.yaml` shipped in this package.

The numbers live in data, not code, so a corrected or added value is a one-line change with its source note
beside it, and a report can show exactly what the paper printed. Loading validates everything up front
(known metric names, every table cell present, a note for every missing cell), so a typo in the file is an
error at load time instead of a silently empty column in a report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tfbench.errors import TfbenchError

SCHEMA_VERSION = 2
DEFAULT_REFERENCE_ROW = "ours"


class PublishedDataError(TfbenchError):
    """The published-numbers file is malformed (unknown metric, missing cell, missing note, bad version)."""


@dataclass(frozen=True)
class MetricInfo:
    """A metric as the paper names it, the tfbench result key it corresponds to, and its direction."""

    name: str
    key: str
    higher_is_better: bool


@dataclass(frozen=True)
class PublishedRow:
    """One method's row of a published table; `values` maps tfbench keys to a number or None (not given)."""

    id: str
    method: str
    values: Mapping[str, float | None]
    notes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PublishedTable:
    """One table of the paper: its dataset, source note, protocol (None where unknown) and rows."""

    id: str
    title: str
    dataset: str
    source: str
    protocol: str | None
    protocol_note: str | None
    columns: tuple[str, ...]  # tfbench keys, in the paper's order
    rows: tuple[PublishedRow, ...]

    def row(self, row_id: str) -> PublishedRow:
        for row in self.rows:
            if row.id == row_id:
                return row
        raise PublishedDataError(f"published table {self.id!r} has no row {row_id!r}")


@dataclass(frozen=True)
class AblationStep:
    """One ablation change as the source states it: a metric (or a statistic of it) before and after."""

    change: str
    key: str
    statistic: str
    before: float | None
    after: float | None
    note: str | None


@dataclass(frozen=True)
class Published:
    """Everything in the published-numbers file, validated."""

    schema_version: int
    data_version: str
    paper: str
    metrics: Mapping[str, MetricInfo]  # by tfbench key
    tables: tuple[PublishedTable, ...]
    ablation_rows: Mapping[str, str | None]
    ablation_steps: tuple[AblationStep, ...]
    ablation_values: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """Per ablation row letter, the published value of each metric key given for it (see the YAML)."""
    ablation_values_note: str = ""

    def table(self, table_id: str) -> PublishedTable:
        for table in self.tables:
            if table.id == table_id:
                return table
        raise PublishedDataError(f"no published table {table_id!r}; known: {[t.id for t in self.tables]}")

    def reference(self, dataset: str, row_id: str = DEFAULT_REFERENCE_ROW) -> PublishedRow | None:
        """The row `row_id` of the first table for `dataset` that has it, or None (no published numbers)."""
        for table in self.tables:
            if table.dataset == dataset.lower() and any(r.id == row_id for r in table.rows):
                return table.row(row_id)
        return None

    def direction(self, key: str) -> bool | None:
        info = self.metrics.get(key)
        return None if info is None else info.higher_is_better


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PublishedDataError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PublishedDataError(f"{where}: expected a finite number or null, got {value!r}")
    return float(value)


def _key(name: str, by_name: Mapping[str, MetricInfo], where: str) -> str:
    if name not in by_name:
        raise PublishedDataError(f"{where}: unknown metric {name!r}; known: {sorted(by_name)}")
    return by_name[name].key


def _parse_row(raw: Any, columns: list[str], by_name: Mapping[str, MetricInfo], where: str) -> PublishedRow:
    raw = _mapping(raw, where)
    values = _mapping(raw.get("values"), f"{where}.values")
    notes = _mapping(raw.get("notes") or {}, f"{where}.notes")
    for name in [*values, *notes]:
        _key(name, by_name, where)
        if name not in columns:
            raise PublishedDataError(f"{where}: metric {name!r} is not a column of its table")
    parsed: dict[str, float | None] = {}
    for name in columns:
        if name not in values:
            raise PublishedDataError(f"{where}: no cell for {name!r} (write null with a note if not given)")
        parsed[by_name[name].key] = _number(values[name], f"{where}.{name}")
        if parsed[by_name[name].key] is None and not notes.get(name):
            raise PublishedDataError(f"{where}.{name}: a missing value needs a note saying why")
    return PublishedRow(
        id=str(raw["id"]),
        method=str(raw["method"]),
        values=parsed,
        notes={by_name[n].key: str(text) for n, text in notes.items()},
    )


def _parse_table(raw: Any, by_name: Mapping[str, MetricInfo], where: str) -> PublishedTable:
    raw = _mapping(raw, where)
    columns = [str(c) for c in raw.get("columns") or []]
    for name in columns:
        _key(name, by_name, f"{where}.columns")
    if raw.get("protocol") is None and not raw.get("protocol_note"):
        raise PublishedDataError(f"{where}: an unknown protocol needs a protocol_note")
    table_id = str(raw["id"])
    rows = tuple(
        _parse_row(r, columns, by_name, f"{where}.{table_id}.rows[{i}]") for i, r in enumerate(raw["rows"])
    )
    return PublishedTable(
        id=table_id,
        title=str(raw["title"]),
        dataset=str(raw["dataset"]).lower(),
        source=str(raw["source"]),
        protocol=None if raw.get("protocol") is None else str(raw["protocol"]),
        protocol_note=None if raw.get("protocol_note") is None else str(raw["protocol_note"]),
        columns=tuple(by_name[n].key for n in columns),
        rows=rows,
    )


def _parse_step(raw: Any, by_name: Mapping[str, MetricInfo], where: str) -> AblationStep:
    raw = _mapping(raw, where)
    before, after = _number(raw.get("before"), f"{where}.before"), _number(raw.get("after"), f"{where}.after")
    if (before is None or after is None) and not raw.get("note"):
        raise PublishedDataError(f"{where}: a missing value needs a note saying why")
    return AblationStep(
        change=str(raw["change"]),
        key=_key(str(raw["metric"]), by_name, where),
        statistic=str(raw.get("statistic", "mean")),
        before=before,
        after=after,
        note=None if raw.get("note") is None else str(raw["note"]),
    )


def _row_values(
    sources: Any, tables: tuple[PublishedTable, ...], steps: tuple[AblationStep, ...], where: str
) -> dict[str, float]:
    """The values one ablation row gets from its sources (table rows, or one side of a change's steps);
    two sources giving one metric different numbers is an error, so a wrong assignment cannot go unseen."""
    if not isinstance(sources, list) or not sources:
        raise PublishedDataError(f"{where}: expected a list of sources")
    values: dict[str, float] = {}
    for i, raw in enumerate(sources):
        spot = f"{where}[{i}]"
        source = _mapping(raw, spot)
        if "table" in source:
            table = next((t for t in tables if t.id == source["table"]), None)
            if table is None:
                raise PublishedDataError(f"{spot}: no table {source['table']!r}")
            given = {k: v for k, v in table.row(str(source.get("row"))).values.items() if v is not None}
        else:
            side = source.get("side")
            matched = [s for s in steps if s.change == source.get("change") and s.statistic == "mean"]
            if side not in ("before", "after") or not matched:
                raise PublishedDataError(f"{spot}: expected {{table, row}} or {{change, side: before|after}}")
            given = {s.key: v for s in matched if (v := getattr(s, side)) is not None}
        for key, value in given.items():
            if values.setdefault(key, value) != value:
                raise PublishedDataError(
                    f"{spot}: {key} {value} disagrees with {values[key]} of another source"
                )
    return values


def parse_published(data: Any, where: str = "published.yaml") -> Published:
    """Validate the parsed YAML document and build the typed, frozen `Published`."""
    data = _mapping(data, where)
    if data.get("schema_version") != SCHEMA_VERSION:
        raise PublishedDataError(
            f"{where}: schema_version {data.get('schema_version')!r}, this tfbench reads {SCHEMA_VERSION}"
        )
    by_name: dict[str, MetricInfo] = {}
    for name, spec in _mapping(data.get("metrics"), f"{where}.metrics").items():
        spec = _mapping(spec, f"{where}.metrics.{name}")
        if not isinstance(spec.get("higher_is_better"), bool):
            raise PublishedDataError(f"{where}.metrics.{name}: higher_is_better must be true or false")
        by_name[str(name)] = MetricInfo(str(name), str(spec["key"]), spec["higher_is_better"])
    try:
        tables = tuple(_parse_table(t, by_name, f"{where}.tables[{i}]") for i, t in enumerate(data["tables"]))
        steps = tuple(
            _parse_step(s, by_name, f"{where}.ablation_steps[{i}]")
            for i, s in enumerate(data.get("ablation_steps") or [])
        )
    except (KeyError, TypeError) as exc:
        raise PublishedDataError(f"{where}: missing or malformed field ({exc})") from exc
    rows = _mapping(data.get("ablation_rows") or {}, f"{where}.ablation_rows")
    assigned = _mapping(data.get("ablation_row_values") or {}, f"{where}.ablation_row_values")
    for letter in assigned:
        if letter not in rows:
            raise PublishedDataError(f"{where}.ablation_row_values: {letter!r} is not one of ablation_rows")
    values = {
        str(letter): _row_values(sources, tables, steps, f"{where}.ablation_row_values.{letter}")
        for letter, sources in assigned.items()
    }
    return Published(
        schema_version=SCHEMA_VERSION,
        data_version=str(data.get("data_version")),
        paper=str(data.get("paper", "")),
        metrics={info.key: info for info in by_name.values()},
        tables=tables,
        ablation_rows={str(k): None if v is None else str(v) for k, v in rows.items()},
        ablation_steps=steps,
        ablation_values=values,
        ablation_values_note=str(data.get("ablation_row_values_note") or ""),
    )


def load_published(path: str | Path | None = None) -> Published:
    """The published numbers from `path`, or from the file shipped with tfbench (cached) when None."""
    if path is None:
        return _load_default()
    path = Path(path)
    return parse_published(_read_yaml(path.read_text(encoding="utf-8"), str(path)), str(path))


@lru_cache(maxsize=1)
def _load_default() -> Published:
    text = resources.files("tfbench.reports").joinpath("published.yaml").read_text(encoding="utf-8")
    return parse_published(
        _read_yaml(text, "tfbench/reports/published.yaml"), "tfbench/reports/published.yaml"
    )


def _read_yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PublishedDataError(f"{where}: not valid YAML ({exc})") from exc
