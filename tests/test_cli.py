"""The CLI shell: help lists only working commands, errors are one red line with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tfbench import __version__
from tfbench.cli import app
from tfbench.cli.app import resolve_device
from tfbench.errors import TfbenchError

EXPECTED_COMMANDS = {
    "ablate",
    "compare",
    "data",
    "models",
    "probe",
    "report",
    "run",
    "runs",
    "score",
    "stability",
    "synth",
    "train",
    "weights",
}


def test_help_lists_the_commands_with_descriptions() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    listed = {c.name or c.callback.__name__ for c in app.registered_commands if c.callback} | {
        g.name for g in app.registered_groups
    }
    assert listed == EXPECTED_COMMANDS
    for name in EXPECTED_COMMANDS:
        line = next(line for line in result.output.splitlines() if line.startswith(f"│ {name} "))
        assert len(line.split(name, 1)[1].strip(" │")) > 10, f"{name} has no one-line description"


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_user_error_is_one_red_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "missing.mp4"
    proc = subprocess.run(
        [sys.executable, "-m", "tfbench", "--device", "cpu", "weights", "path", "no_such_weight"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "no_such_weight" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "tfbench", "probe", str(missing)], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_debug_shows_the_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tfbench", "--debug", "--device", "nonsense", "weights", "list"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_device_resolution() -> None:
    import torch

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(TfbenchError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(TfbenchError, match="CUDA is not available"):
            resolve_device("cuda:0")
