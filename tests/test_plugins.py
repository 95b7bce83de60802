"""Third-party models through the `tfbench.models` entry points; typed model options (`shifted --shift 5`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import tfbench.baselines  # the built-ins are registered before `plugin` copies the registry
import tfbench.cli.models  # noqa: F401  (registers `tfbench models` until tfbench.cli imports it)
from tfbench import registry
from tfbench.benchmark.distributed import DistributedContext
from tfbench.benchmark.options import RunOptions
from tfbench.benchmark.runner import Runner
from tfbench.cli import app
from tfbench.data.synthetic import SynthConfig, write_dataset
from tfbench.errors import TfbenchError
from tfbench.models.protocol import (
    MODELS,
    GenerationRequest,
    ModelOptions,
    load_model,
    option_specs,
    parse_key_values,
    parse_model_options,
    parse_options,
)

PLUGIN = '''
"""A third-party model package: the ground truth brightened by `level` grey levels."""
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from tfbench.models.protocol import ModelOptions, TalkingFaceModel


@dataclass(frozen=True)
class BrightOptions(ModelOptions):
    level: int = field(default=3, metadata={"help": "grey levels added to every pixel"})


class MyModel(TalkingFaceModel):
    description: ClassVar[str] = "test plugin: the ground truth, brighter"
    weights: ClassVar[tuple[str, ...]] = ("syncnet_v2",)
    options_class = BrightOptions

    def __init__(self, level):
        self.level = level

    @classmethod
    def load(cls, device="cpu", overrides=None, options=None):
        return cls((options or BrightOptions()).level)

    def generate(self, request):
        return np.clip(request.faces.astype(np.int16) + self.level, 0, 255).astype(np.uint8)
'''


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    write_dataset(root, SynthConfig(layout="lrs2", speakers=1, clips=2, seconds=1.0, seed=5))
    return root


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty TFBENCH_HOME: no weight file is present, crops are cached under tmp_path."""
    monkeypatch.setenv("TFBENCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`myplugin` offered by a monkeypatched entry-point list, on a copy of the model registry."""
    (tmp_path / "plugmod.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    real = registry.entry_points
    offered = EntryPoint(name="myplugin", value="plugmod:MyModel", group="tfbench.models")

    def entry_points(*, group: str) -> list[EntryPoint]:
        return [offered] if group == "tfbench.models" else list(real(group=group))

    monkeypatch.setattr(registry, "entry_points", entry_points)
    monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))
    monkeypatch.setattr(MODELS, "_aliases", dict(MODELS._aliases))
    monkeypatch.setattr(MODELS, "_plugins_loaded", False)
    yield "myplugin"
    sys.modules.pop("plugmod", None)


def _options(dataset: Path, out: Path, **changes: object) -> RunOptions:
    values: dict[str, object] = {
        "model": "gt",
        "dataset": "synthetic",
        "root": dataset,
        "metrics": ("psnr",),
        "out": out,
        "detector": "none",
        "workers": 1,
    }
    values.update(changes)
    return RunOptions(**values)  # type: ignore[arg-type]


def test_plugin_is_listed_and_runs(plugin: str, dataset: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["models"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert f"│ {plugin} " in result.output and "test plugin" in result.output and "level=3" in result.output
    assert "syncnet_v2: missing" in result.output and "tfbench weights fetch syncnet_v2" in result.output
    assert "wav2lip" in result.output and "shift=8" in result.output and "template=required" in result.output

    store = Runner(_options(dataset, tmp_path / "run", model=plugin, model_options={"level": "40"}),
                   DistributedContext()).run()  # fmt: skip
    table = store.write_results()
    assert list(table["status"]) == ["ok", "ok"]
    assert (table["psnr"] < 20).all()  # 40 grey levels brighter than the ground truth: about 16 dB
    config = yaml.safe_load((store.run_dir / "config.yaml").read_text())
    assert config["model"] == plugin and config["model_options"] == {"level": "40"}


def _request(n: int = 12) -> GenerationRequest:
    faces = np.stack([np.full((96, 96, 3), 10 * i, np.uint8) for i in range(n)])
    return GenerationRequest("clip", faces, faces[:1], np.zeros(n * 640, np.float32))


def test_shifted_by_5_is_the_ground_truth_5_frames_late() -> None:
    request = _request()
    frames = load_model("shifted", options={"shift": "5"}).generate(request)
    assert np.array_equal(frames, request.faces[np.maximum(np.arange(12) - 5, 0)])
    default = load_model("shifted").generate(request)
    assert np.array_equal(default, request.faces[np.maximum(np.arange(12) - 8, 0)])
    assert parse_model_options("shifted", {"shift": "-2"}).record() == {"shift": "-2"}


@pytest.mark.parametrize(
    ("model", "values", "message"),
    [
        ("shifted", {"shift": "five"}, "model 'shifted': option shift='five' must be an integer"),
        ("shifted", {"shift": "0"}, "a shift of 0 frames is the gt baseline"),
        ("shifted", {"shfit": "5"}, "model 'shifted' has no option 'shfit'; did you mean 'shift'"),
        ("gt", {"shift": "5"}, "model 'gt' takes no options"),
        ("ground-truth", {"x": "1"}, "model 'gt' takes no options"),
    ],
)
def test_bad_options_are_clear_errors(model: str, values: dict[str, str], message: str) -> None:
    with pytest.raises(TfbenchError, match=message):
        load_model(model, options=values)


def test_cli_shift_sugar_and_model_option(dataset: Path, tmp_path: Path) -> None:
    base = [
        "run",
        "--dataset",
        "synthetic",
        "--root",
        str(dataset),
        "--metrics",
        "psnr",
        "--detector",
        "none",
    ]
    result = CliRunner().invoke(
        app, [*base, "--model", "shifted", "--shift", "5", "--out", str(tmp_path / "a")]
    )
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    assert config["model_options"] == {"shift": "5"}

    result = CliRunner().invoke(app, [*base, "--model", "gt", "--shift", "5", "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "model 'gt' takes no options (got 'shift')" in result.output
    clash = ["--model", "shifted", "--shift", "5", "--model-option", "shift=3", "--out", str(tmp_path / "c")]
    result = CliRunner().invoke(app, [*base, *clash])
    assert result.exit_code == 2 and "'shift' given twice" in result.output
    with pytest.raises(TfbenchError, match="expected KEY=VALUE"):
        parse_key_values(["shift"])


@dataclass(frozen=True)
class _Everything(ModelOptions):
    path: Path
    flag: bool = False
    ratio: float = field(default=0.5, metadata={"help": "a ratio"})
    limit: int | None = None
    label: str = "x"


def test_option_types_parse_and_record_round_trip(tmp_path: Path) -> None:
    values = {"path": str(tmp_path), "flag": "yes", "ratio": "0.25", "limit": "none", "label": " spaced "}
    options = parse_options("test", _Everything, values)
    assert options == _Everything(tmp_path, True, 0.25, None, " spaced ")
    assert parse_options("test", _Everything, options.record()) == options
    with pytest.raises(TfbenchError, match="test needs option 'path'"):
        parse_options("test", _Everything, {})
    with pytest.raises(TfbenchError, match="option flag='maybe' must be true or false"):
        parse_options("test", _Everything, {"path": "p", "flag": "maybe"})
    with pytest.raises(TfbenchError, match="must be a finite number"):
        parse_options("test", _Everything, {"path": "p", "ratio": "nan"})
    specs = {spec.name: spec for spec in option_specs(_Everything)}
    assert specs["path"].default is None and specs["limit"].type_name == "int | None"
    assert specs["ratio"].help == "a ratio" and specs["flag"].default == "false"
