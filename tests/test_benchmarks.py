"""The speed benchmarks run end to end at tiny sizes and write their JSON record with the documented keys.

No timing is asserted (a benchmark is not a timed unit test): these check that every route runs, that the
routes agree, and the record. Both run in this process, from the repository root as `python -m` would, with
the session's threads (`--threads` would change them for the tests after these).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"frames", "tfbench_s", "reference_s", "limit_s", "max_abs_diff"}


@pytest.fixture(autouse=True)
def repository_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """`benchmarks` and `tests` importable as packages, as from the repository root."""
    monkeypatch.syspath_prepend(str(ROOT))


def _record(path: Path, command: str) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert set(data) >= KEYS and data["command"].startswith(command)
    assert all(data[key] > 0 for key in ("tfbench_s", "reference_s", "limit_s", "tfbench_cpu_s"))
    assert set(data["all_rounds_s"]) >= {"tfbench", "reference"} and len(data["runs"]) >= 1
    assert data["torch_threads"] == torch.get_num_threads() and "load_average_1min" in data
    return data


def test_lse_benchmark_runs_every_route_and_writes_its_record(tmp_path: Path) -> None:
    from benchmarks import lse

    out = tmp_path / "lse.json"
    tiny = ["--videos", "1", "--frames", "7", "--rounds", "1", "--device", "cpu"]
    lse.main([*tiny, "--json", str(out)])
    data = _record(out, "python -m benchmarks.lse")
    assert (data["videos"], data["frames"], data["windows"]) == (1, 7, 2)
    assert data["lse_protocol"] == "w2l_lrs" and data["precision"] == "fp32"
    assert data["max_abs_diff"] < 1e-4 and data["offsets_equal"]  # the same frames through both routes
    assert data["tfbench_score_max_abs_diff"] < 1e-4  # `tfbench score` gives tfbench's numbers
    assert set(data["limit_s_by_layout"]) == {"channels_last_3d", "contiguous_format"}


def test_fid_benchmark_runs_every_route_and_writes_its_record(tmp_path: Path) -> None:
    from benchmarks import fid

    out = tmp_path / "fid.json"
    tiny = ["--videos", "1", "--frames", "5", "--rounds", "1", "--dims", "64"]
    fid.main([*tiny, "--device", "cpu", "--json", str(out)])
    data = _record(out, "python -m benchmarks.fid")
    assert (data["frames"], data["dims"], data["size"]) == (10, 64, 96)
    assert data["fid_tfbench"] > 0.01  # two different sets of faces
    assert data["max_abs_diff"] < 1e-3  # pytorch-fid's own command on PNG files of the same crops
    assert data["distance_s"] > 0 and data["decode_bound"] is False
