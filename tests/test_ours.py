"""The `ours` model: a `tfbench train generator` checkpoint loaded through the model registry."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tfbench.data.crop_cache import CropCache
from tfbench.data.faces import preset
from tfbench.data.synthetic import SynthConfig, write_dataset
from tfbench.errors import TfbenchError
from tfbench.media import read_audio
from tfbench.models.config import load_config
from tfbench.models.ours import OursModel  # registers `ours`
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
