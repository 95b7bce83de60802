"""The run folder: config.yaml, one parquet part per sample, results.parquet, summary.json.

Each sample's row is written to `parts/<hash of its id>.parquet` under a temporary name and renamed, so a
killed run loses at most the sample in flight, a resumed run skips what is finished, and rewriting a sample
(a failed one retried) replaces its row instead of adding a second. Ranks of a distributed run write
disjoint samples, hence disjoint part files, with no coordination. `results.parquet` is the parts merged.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from tfbench.errors import TfbenchError
from tfbench.fileio import atomic_path, atomic_write_text

STATUS_OK = "ok"
STATUS_SKIPPED = "skipped"
STATUS_FAILED = "failed"
FINISHED = frozenset({STATUS_OK, STATUS_SKIPPED})
# Recorded in config.yaml for the reader, but a rerun may change them without being a different run.
VOLATILE_CONFIG_KEYS = frozenset(
    {"command", "started", "tfbench_version", "git_commit", "host", "device", "limit"}
)


class RunConfigMismatch(TfbenchError):
    """The run folder holds a run made with different settings; resuming would mix two runs."""


def config_differences(stored: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    """The settings (volatile ones aside) in which two run configs differ."""
    keys = (set(stored) | set(config)) - VOLATILE_CONFIG_KEYS
    return sorted(key for key in keys if stored.get(key) != config.get(key))


def find_resumable(parent: Path, prefix: str, config: Mapping[str, Any]) -> Path | None:
    """The newest run folder `parent/prefix*` made with the same settings, so a rerun resumes it."""
    if not parent.is_dir():
        return None
    for folder in sorted(parent.glob(f"{prefix}*"), reverse=True):
        stored = RunStore(folder).read_config() if (folder / "config.yaml").is_file() else None
        if stored is not None and not config_differences(stored, config):
            return folder
    return None


def _part_name(sample_id: str) -> str:
    return hashlib.sha1(sample_id.encode("utf-8")).hexdigest()[:20] + ".parquet"


class RunStore:
    """Reads and writes one run folder."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.parts_dir = self.run_dir / "parts"
        self.videos_dir = self.run_dir / "videos"

    @property
    def config_path(self) -> Path:
        return self.run_dir / "config.yaml"

    @property
    def results_path(self) -> Path:
        return self.run_dir / "results.parquet"

    @property
    def summary_path(self) -> Path:
        return self.run_dir / "summary.json"

    def read_config(self) -> dict[str, Any] | None:
        """The stored config, or None for a new folder."""
        if not self.config_path.exists():
            return None
        try:
            data = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise TfbenchError(f"{self.config_path}: not valid YAML ({exc})") from exc
        if not isinstance(data, dict):
            raise TfbenchError(f"{self.config_path}: expected a mapping of settings")
        return data

    def open(self, config: Mapping[str, Any]) -> None:
        """Start or resume a run: write config.yaml, or refuse if the folder holds a different run."""
        stored = self.read_config()
        if stored is not None:
            differing = config_differences(stored, config)
            if differing:
                detail = "; ".join(f"{k}: {stored.get(k)!r} -> {config.get(k)!r}" for k in differing)
                raise RunConfigMismatch(
                    f"{self.run_dir} holds a run with other settings ({detail}); use another --out folder"
                )
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        self.videos_dir.mkdir(parents=True, exist_ok=True)
        merged = {**(stored or {}), **config}
        atomic_write_text(self.config_path, yaml.safe_dump(dict(merged), sort_keys=True))

    def write_row(self, row: Mapping[str, Any]) -> Path:
        """Write one sample's row (must hold `sample_id` and `status`) atomically, replacing an older one."""
        if "sample_id" not in row or row.get("status") not in (STATUS_OK, STATUS_SKIPPED, STATUS_FAILED):
            raise ValueError(f"a results row needs sample_id and a valid status, got {dict(row)}")
        path = self.parts_dir / _part_name(str(row["sample_id"]))
        with atomic_path(path) as tmp:
            pq.write_table(pa.Table.from_pylist([dict(row)]), tmp)
        return path

    def rows(self) -> pd.DataFrame:
        """Every written row, one per sample, sorted by sample id (an empty frame for a new run)."""
        parts = sorted(self.parts_dir.glob("*.parquet")) if self.parts_dir.exists() else []
        if not parts:
            return pd.DataFrame({"sample_id": pd.Series(dtype=str), "status": pd.Series(dtype=str)})
        try:
            frames = [pq.read_table(p).to_pandas() for p in parts]
        except (pa.ArrowInvalid, OSError) as exc:
            raise TfbenchError(f"{self.parts_dir}: unreadable results part ({exc})") from exc
        return pd.concat(frames, ignore_index=True).sort_values("sample_id", ignore_index=True)

    def finished_ids(self) -> set[str]:
        """Samples with a row that need no more work (scored or skipped with a reason; failed ones retry)."""
        table = self.rows()
        return set(table.loc[table["status"].isin(FINISHED), "sample_id"])

    def write_results(self) -> pd.DataFrame:
        """Merge the parts into results.parquet (atomically) and return the table."""
        table = self.rows()
        with atomic_path(self.results_path) as tmp:
            table.to_parquet(tmp, index=False)
        return table

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        """summary.json, written atomically; JSON has no NaN or inf: NaN becomes null, +-inf "inf"/"-inf"."""
        atomic_write_text(self.summary_path, json.dumps(_json_safe(summary), indent=2, sort_keys=True) + "\n")

    def read_summary(self) -> dict[str, Any]:
        if not self.summary_path.exists():
            raise TfbenchError(f"{self.run_dir}: no summary.json (the run has not finished)")
        data: dict[str, Any] = json.loads(self.summary_path.read_text(encoding="utf-8"))
        return data


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _json_safe(value.item())
    return value
