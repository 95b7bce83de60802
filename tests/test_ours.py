"""The `ours` model: a `tfbench train generator` checkpoint loaded through the model registry."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from tfbench import weights
from tfbench.data.crop_cache import CropCache
from tfbench.data.faces import preset
from tfbench.data.synthetic import SynthConfig, write_dataset
from tfbench.errors import TfbenchError
from tfbench.media import read_audio
from tfbench.models.config import load_config
from tfbench.models.ours import OursDemoModel, OursModel  # registers `ours` and `ours_demo`
from tfbench.models.protocol import MODELS, GenerationRequest
from tfbench.models.training import prepare_data, train_stage

SETTINGS = preset("wav2lip", detector="none", coverage="full", min_track=0)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, list[np.ndarray], list[np.ndarray]]]:
    """(generator checkpoint, crops of two clips, their audio): the three stages run on synthetic clips
    (AVSyncNet and G_S at their initialisation, G_L for 2 steps), as a user runs them in order."""
    base = tmp_path_factory.mktemp("ours")
    tiny = load_config("tiny")
    loss = dataclasses.replace(tiny.loss, weights=dataclasses.replace(tiny.loss.weights, per=0.0))
    config = dataclasses.replace(tiny, loss=loss, train=dataclasses.replace(tiny.train, val_windows=2))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFBENCH_HOME", str(base / "home"))
        write_dataset(base / "data", SynthConfig("lrs2", speakers=1, clips=3, seconds=2.0, seed=2))
        cache = CropCache()
        data = prepare_data("synthetic", base / "data", "test", SETTINGS, cache, val_fraction=0.3)
        avsyncnet = train_stage("avsyncnet", config, data, base / "a", steps=0).checkpoint
        silent = train_stage("silent", config, data, base / "s", sources={"avsyncnet": avsyncnet}, steps=0)
        sources = {"avsyncnet": avsyncnet, "silent": silent.checkpoint}
        generator = train_stage("generator", config, data, base / "g", sources=sources, steps=2)
        crops = [data.store.crops(i)[: data.store.clips[i].n_frames] for i in range(2)]
        audio = [read_audio(data.store.clips[i].video) for i in range(2)]
        yield generator.checkpoint, crops, audio


def test_ours_generates_from_a_trained_checkpoint(
    trained: tuple[Path, list[np.ndarray], list[np.ndarray]],
) -> None:
    checkpoint, crops, audio = trained
    model = MODELS.get("ours").load("cpu", {"ours": checkpoint})
    assert model.crop_size == 96 and model.weights == ("ours",)
    faces = crops[0][:20]
    n = len(faces)
    own = GenerationRequest("clip0", faces, faces[[n // 2]], audio[0][: n * 640])
    out = model.generate(own)
    assert out.shape == (n, 96, 96, 3) and out.dtype == np.uint8
    other = GenerationRequest("clip0+1", faces, faces[[n // 2]], audio[1][: n * 640])
    dubbed = model.generate(other)
    assert not np.array_equal(out[:, 48:], dubbed[:, 48:])  # the audio conditions the mouth
    silence = GenerationRequest("clip0-silent", faces, faces[[n // 2]], np.zeros(n * 640, np.float32))
    assert not np.array_equal(model.generate(silence), out)
    # frames are independent: another batch size changes only float rounding
    assert isinstance(model, OursModel)
    small = OursModel(model.config, model.lip, model.silent, "cpu", batch_size=7)
    assert np.abs(small.generate(own).astype(int) - out).max() <= 1
    assert model.generate(dataclasses.replace(own, faces=faces[:0])).shape == (0, 96, 96, 3)


def test_ours_needs_a_generator_checkpoint(
    trained: tuple[Path, list[np.ndarray], list[np.ndarray]], tmp_path: Path
) -> None:
    checkpoint, _, _ = trained
    with pytest.raises(TfbenchError, match="no such file"):
        MODELS.get("ours").load("cpu", {"ours": tmp_path / "missing.pt"})
    avsyncnet = checkpoint.parent.parent / "a" / "last.pt"
    with pytest.raises(TfbenchError, match="stage 'avsyncnet', expected 'generator'"):
        MODELS.get("ours").load("cpu", {"ours": avsyncnet})
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(TfbenchError, match="not a readable tfbench training checkpoint"):
        MODELS.get("ours").load("cpu", {"ours": tmp_path / "junk.pt"})


# --------------------------------------------------------------------------- the packaged demo weights
DEMO_LABEL = "synthetic-data demo weights"


def test_ours_demo_loads_the_packaged_weights_offline(
    trained: tuple[Path, list[np.ndarray], list[np.ndarray]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ours_demo` reads tfbench/models/demo/ours_demo.pt through the weights registry (no download, sha256
    checked) and says what it is; the same file through `ours` carries its label too."""
    monkeypatch.setenv("TFBENCH_OFFLINE", "1")
    checkpoint, crops, audio = trained
    demo = MODELS.get("ours_demo").load("cpu", None)
    assert isinstance(demo, OursDemoModel) and demo.weights == ("ours_demo",)
    assert demo.label == DEMO_LABEL and DEMO_LABEL in demo.description
    assert demo.describe().endswith(f"[checkpoint: {DEMO_LABEL}]") and demo.silent is not None
    faces = crops[0][:10]
    out = demo.generate(GenerationRequest("clip0", faces, faces[[5]], audio[0][: 10 * 640]))
    assert out.shape == (10, 96, 96, 3) and out.std() > 5  # a face, not a flat image
    as_ours = MODELS.get("ours").load("cpu", {"ours": weights.resolve("ours_demo")})
    assert type(as_ours) is OursModel and as_ours.label == DEMO_LABEL
    trained_model = OursModel.from_checkpoint(checkpoint)
    assert trained_model.label == "" and trained_model.describe() == OursModel.description


@pytest.mark.parametrize("model", ["ours", "ours_demo"])
def test_tfbench_run_with_ours_on_synthetic_data(
    model: str,
    trained: tuple[Path, list[np.ndarray], list[np.ndarray]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`tfbench run` generates and scores a synthetic clip with `ours` (a trained checkpoint) and with
    `ours_demo`; the run's config records the model, the weights file it used with its sha256, and the
    demo weights' label."""
    from tfbench.cli import app

    monkeypatch.setenv("TFBENCH_HOME", str(tmp_path / "home"))
    checkpoint = trained[0]
    root = checkpoint.parent.parent / "data"
    args = ["--device", "cpu", "run", "--model", model, "--dataset", "synthetic", "--root", str(root)]
    args += ["--detector", "none", "--metrics", "psnr", "--limit", "1", "--out", str(tmp_path / "run")]
    if model == "ours":
        args += ["--weights", f"ours={checkpoint}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["model"] == model
    used = config["weights"][model]
    assert used["sha256"] == weights.sha256_file(Path(used["path"]))
    if model == "ours_demo":
        assert Path(used["path"]) == weights.resolve("ours_demo")
        assert used["sha256"] == weights.spec("ours_demo").sha256
        assert config["model_label"] == DEMO_LABEL  # a reader of the run folder sees what the weights are
    else:
        assert "model_label" not in config  # a training checkpoint has no label
    summary = (tmp_path / "run" / "summary.json").read_text()
    assert "psnr" in summary
