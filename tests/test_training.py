"""`tfbench train`: data windows, the three stages, atomic checkpoints, bit-exact resume, the CLI."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tfbench.data.crop_cache import CropCache
from tfbench.data.faces import preset
from tfbench.data.synthetic import SynthConfig, write_dataset
from tfbench.errors import TfbenchError
from tfbench.models.config import ModelConfig, load_config, save_config
from tfbench.models.training import (
    STAGES,
    load_avsyncnet,
    load_checkpoint,
    load_generators,
    prepare_data,
    train_stage,
)
from tfbench.models.training.checkpoint import export_checkpoint
from tfbench.models.training.data import (
    MIN_CLIP_FRAMES,
    Clip,
    ClipStore,
    FaceWindows,
    StepBatchSampler,
    SyncWindows,
    TrainData,
    all_starts,
    silent_starts,
)
from tfbench.weights import sha256_file


def fast_config() -> ModelConfig:
    """tiny.yaml with CPU-test sizes: no perceptual term (a random VGG19 is most of a CPU step), 2
    validation windows, batches of 8 sync pairs and of 1 generator window (5 frames)."""
    tiny = load_config("tiny")
    train = dataclasses.replace(
        tiny.train,
        val_windows=2,
        val_interval=1000,
        checkpoint_interval=1000,
        avsyncnet=dataclasses.replace(tiny.train.avsyncnet, batch_size=8),
        silent=dataclasses.replace(tiny.train.silent, batch_size=1),
        generator=dataclasses.replace(tiny.train.generator, batch_size=1),
    )
    loss = dataclasses.replace(tiny.loss, weights=dataclasses.replace(tiny.loss.weights, per=0.0))
    return dataclasses.replace(tiny, loss=loss, train=train)


CONFIG = fast_config()
SETTINGS = preset("wav2lip", detector="none", coverage="full", min_track=0)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Small CPU models run faster on one thread than on two contended ones (and reproducibly); module scope,
    so that the module-scoped training fixtures run on one thread too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A synthetic LRS2-layout dataset (2 speakers x 3 clips of 2 s) and a private TFBENCH_HOME."""
    base = tmp_path_factory.mktemp("training")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFBENCH_HOME", str(base / "home"))
        write_dataset(base / "data", SynthConfig("lrs2", speakers=2, clips=3, seconds=2.0, seed=0))
        yield base / "data"


@pytest.fixture(scope="module")
def data(root: Path) -> TrainData:
    return prepare_data("synthetic", root, "test", SETTINGS, CropCache(), val_fraction=0.2)


@pytest.fixture(scope="module")
def avsyncnet_checkpoint(data: TrainData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("avsyncnet")
    return train_stage("avsyncnet", CONFIG, data, out, steps=2).checkpoint


@pytest.fixture(scope="module")
def silent_checkpoint(
    data: TrainData, avsyncnet_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("silent")
    result = train_stage("silent", CONFIG, data, out, sources={"avsyncnet": avsyncnet_checkpoint}, steps=1)
    assert result.step == 1 and result.steps_per_second
    return result.checkpoint


# --------------------------------------------------------------------------- data
def test_prepared_clips_leave_out_planted_offsets(data: TrainData) -> None:
    assert [why for _, why in data.skipped] == ["known audio-video offset of -2 frames"]
    assert len(data.train) == 4 and len(data.val) == 1 and not set(data.train) & set(data.val)
    clip = data.store.clips[0]
    assert clip.n_frames == 50 and clip.mel.shape[0] == 80
    assert clip.mel_windows(3).shape == (5, 1, 80, 16)
    np.testing.assert_array_equal(clip.mel_windows(3)[1, 0], clip.mel[:, 12:28])  # frame 4: int(80 * 4 / 25)


def test_windows_pair_sync_and_reference(data: TrainData) -> None:
    sync = SyncWindows(data.store, data.train, seed=0)
    items = [sync[(7, p)] for p in range(4)]
    assert [float(i["label"]) for i in items] == [1.0, 0.0, 1.0, 0.0]  # balanced by position parity
    assert items[0]["frames"].shape == (5, 96, 96, 3) and items[0]["frames"].dtype == np.uint8
    assert items[0]["mel"].shape == (1, 80, 16)
    clip, start = sync.windows[7]
    np.testing.assert_array_equal(items[0]["mel"], data.store.clips[clip].mel_windows(start, 1)[0])
    faces = FaceWindows(data.store, all_starts(data.store, data.train), seed=0)
    item = faces[(7, 11)]
    assert item["target"].shape == item["reference"].shape == (5, 96, 96, 3)
    assert item["mel"].shape == (5, 1, 80, 16)
    assert np.array_equal(faces[(7, 11)]["reference"], item["reference"])  # keyed: the same every time
    quiet = silent_starts(data.store, data.train, level=-2.0)
    assert quiet and len(quiet) < len(faces)
    for c, s in quiet:
        assert data.store.clips[c].mel_windows(s, 1).mean(axis=2).max() < -2.0


def test_every_window_of_the_shortest_clip_has_a_partner(tmp_path: Path) -> None:
    clip = Clip("short", tmp_path / "short.mp4", MIN_CLIP_FRAMES, 25.0, np.full((80, 60), -4.0, np.float32))
    store = ClipStore([clip], SETTINGS, tmp_path)
    store.remember(0, np.zeros((MIN_CLIP_FRAMES, 96, 96, 3), np.uint8))
    sync, faces = SyncWindows(store, [0], seed=0), FaceWindows(store, all_starts(store, [0]), seed=0)
    assert len(sync) == len(faces) == MIN_CLIP_FRAMES - 4
    for index in range(len(sync)):
        for position in range(1, 21, 2):  # odd positions: negatives, drawn at least 5 frames away
            assert sync[(index, position)]["label"] == 0.0
            assert faces[(index, position)]["reference"].shape == (5, 96, 96, 3)


def test_step_batches_depend_on_the_step_only() -> None:
    whole = list(StepBatchSampler(10, 4, seed=3, start=0, stop=6))
    assert list(StepBatchSampler(10, 4, seed=3, start=2, stop=6)) == whole[2:]
    positions = [p for batch in whole for _, p in batch]
    assert positions == list(range(24))
    first_epoch = [i for batch in whole for i, _ in batch][:10]
    assert sorted(first_epoch) == list(range(10))  # an epoch visits every item once


# --------------------------------------------------------------------------- stages, checkpoints, resume
def assert_same_optimizers(a: dict[str, object], b: dict[str, object]) -> None:
    """Two checkpoints hold identical optimiser states: every Adam tensor (step, exp_avg, exp_avg_sq) of every
    parameter, and the same parameter groups (learning rate, betas, ...)."""
    optimizers_a, optimizers_b = a["optimizers"], b["optimizers"]
    assert isinstance(optimizers_a, dict) and isinstance(optimizers_b, dict)
    assert set(optimizers_a) == set(optimizers_b)
    for name, state_a in optimizers_a.items():
        state_b = optimizers_b[name]
        assert state_a["param_groups"] == state_b["param_groups"], name
        assert set(state_a["state"]) == set(state_b["state"]) and state_a["state"], name
        for index, tensors in state_a["state"].items():
            assert set(tensors) == set(state_b["state"][index]) >= {"step", "exp_avg", "exp_avg_sq"}
            for key, value in tensors.items():
                assert torch.equal(value, state_b["state"][index][key]), f"{name}[{index}].{key}"


def test_avsyncnet_resumes_bit_exact(data: TrainData, tmp_path: Path) -> None:
    whole = train_stage("avsyncnet", CONFIG, data, tmp_path / "whole", steps=3)
    part = train_stage("avsyncnet", CONFIG, data, tmp_path / "part", steps=1)  # "killed" after step 1
    assert part.step == 1 and load_checkpoint(part.checkpoint)["step"] == 1
    resumed = train_stage("avsyncnet", CONFIG, data, tmp_path / "part", steps=3)
    assert resumed.start_step == 1 and resumed.step == 3
    a, b = load_checkpoint(whole.checkpoint, "avsyncnet"), load_checkpoint(resumed.checkpoint, "avsyncnet")
    assert a["step"] == b["step"] == 3
    for key, value in a["models"]["avsyncnet"].items():
        assert torch.equal(value, b["models"]["avsyncnet"][key]), key
    assert_same_optimizers(a, b)
    latest = b["metrics"]["latest"]
    assert latest["step"] == 3 and 0.0 <= latest["val_accuracy"] <= 1.0 and np.isfinite(latest["val_bce"])
    assert [h["step"] for h in b["metrics"]["history"]] == [0, 1, 3]
    assert b["config"] == a["config"] and (tmp_path / "part" / "config.yaml").is_file()
    config, net = load_avsyncnet(resumed.checkpoint)
    assert config.train == CONFIG.train and not net.training
    again = train_stage("avsyncnet", CONFIG, data, tmp_path / "part", steps=3)  # nothing left to do
    assert again.start_step == 3 and again.steps_per_second is None


def test_resume_refuses_another_config(data: TrainData, avsyncnet_checkpoint: Path) -> None:
    changed = dataclasses.replace(CONFIG, train=dataclasses.replace(CONFIG.train, seed=5))
    with pytest.raises(TfbenchError, match=r"another config \(train\.seed: 0 -> 5\)"):
        train_stage("avsyncnet", changed, data, avsyncnet_checkpoint.parent, steps=3)
    with pytest.raises(TfbenchError, match="stage 'avsyncnet', expected 'silent'"):
        load_checkpoint(avsyncnet_checkpoint, "silent")


def test_silent_stage_trains_and_validates(silent_checkpoint: Path) -> None:
    saved = load_checkpoint(silent_checkpoint, "silent")
    assert saved["step"] == 1 and set(saved["models"]) == {"silent", "discriminator", "avsyncnet"}
    latest = saved["metrics"]["latest"]
    assert {"val_l1", "val_sync_generated", "val_sync_gt"} <= set(latest)
    assert set(saved["metrics"]["train"]) == {"pix", "gan", "total", "disc"}  # no sync term in G_S
    assert saved["sources"]["avsyncnet"].endswith("last.pt")


def test_generator_needs_earlier_stages(data: TrainData, avsyncnet_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(TfbenchError, match="--avsyncnet PATH"):
        train_stage("generator", CONFIG, data, tmp_path / "a", steps=1)
    with pytest.raises(TfbenchError, match="--silent PATH"):
        train_stage("generator", CONFIG, data, tmp_path / "b", sources={"avsyncnet": avsyncnet_checkpoint})


def test_generator_resumes_bit_exact(
    data: TrainData, avsyncnet_checkpoint: Path, silent_checkpoint: Path, tmp_path: Path
) -> None:
    sources = {"avsyncnet": avsyncnet_checkpoint, "silent": silent_checkpoint}
    whole = train_stage("generator", CONFIG, data, tmp_path / "whole", sources=sources, steps=2)
    train_stage("generator", CONFIG, data, tmp_path / "part", sources=sources, steps=1)
    resumed = train_stage("generator", CONFIG, data, tmp_path / "part", steps=2)  # sources come from the file
    assert resumed.start_step == 1 and resumed.step == 2
    a, b = load_checkpoint(whole.checkpoint, "generator"), load_checkpoint(resumed.checkpoint, "generator")
    for name in ("generator", "discriminator", "silent", "avsyncnet"):
        for key, value in a["models"][name].items():
            assert torch.equal(value, b["models"][name][key]), f"{name}.{key}"
    assert set(b["optimizers"]) == {"generator", "discriminator"}
    assert_same_optimizers(a, b)
    assert set(b["metrics"]["train"]) >= {"pix", "gan", "sync", "triplet", "disc"}
    latest = b["metrics"]["latest"]
    assert {"val_l1", "val_l1_lower_half", "val_sync_generated", "val_sync_gt", "val_sync_gap"} <= set(latest)
    config, lip, silent = load_generators(resumed.checkpoint)
    assert silent is not None and not lip.training and config.ablation == CONFIG.ablation
    # G_L got AVSyncNet's audio encoder, frozen: unchanged by training
    _, expert = load_avsyncnet(avsyncnet_checkpoint)
    for key, value in expert.audio_encoder.state_dict().items():
        assert torch.equal(lip.audio_encoder.state_dict()[key], value), key


def test_plain_sync_ablation_without_silent_generator(
    data: TrainData, avsyncnet_checkpoint: Path, tmp_path: Path
) -> None:
    row_b = dataclasses.replace(
        CONFIG,
        ablation=dataclasses.replace(
            CONFIG.ablation, use_silent_generator=False, sync_loss="plain", use_triplet=False
        ),
    )
    result = train_stage(
        "generator", row_b, data, tmp_path, sources={"avsyncnet": avsyncnet_checkpoint}, steps=1
    )
    saved = load_checkpoint(result.checkpoint, "generator")
    assert "silent" not in saved["models"] and "triplet" not in saved["metrics"]["train"]
    assert load_generators(result.checkpoint)[2] is None


def test_export_keeps_inference_networks_and_a_label(
    data: TrainData, avsyncnet_checkpoint: Path, silent_checkpoint: Path, tmp_path: Path
) -> None:
    label = " synthetic-data demo weights "
    dest = export_checkpoint(avsyncnet_checkpoint, tmp_path / "export" / "last.pt", label, half=True)
    exported, source = load_checkpoint(dest, "avsyncnet"), load_checkpoint(avsyncnet_checkpoint)
    assert exported["label"] == "synthetic-data demo weights" and exported["step"] == source["step"]
    assert not {"optimizers", "scalers", "rng"} & set(exported) and exported["config"] == source["config"]
    assert exported["exported_from"]["sha256"] == sha256_file(avsyncnet_checkpoint)
    assert dest.stat().st_size < avsyncnet_checkpoint.stat().st_size / 4  # no Adam state, float16
    _, net = load_avsyncnet(dest)
    _, original = load_avsyncnet(avsyncnet_checkpoint)
    assert net.label == "synthetic-data demo weights" and original.label == ""
    for key, value in original.state_dict().items():
        assert torch.allclose(net.state_dict()[key].float(), value.float(), rtol=1e-3, atol=1e-4), key
    with pytest.raises(TfbenchError, match="exported, inference-only checkpoint; it cannot be resumed"):
        train_stage("avsyncnet", CONFIG, data, dest.parent, steps=3)
    with pytest.raises(TfbenchError, match="non-empty label"):
        export_checkpoint(avsyncnet_checkpoint, tmp_path / "b.pt", " ")
    silent = export_checkpoint(silent_checkpoint, tmp_path / "s.pt", "demo")
    assert set(load_checkpoint(silent)["models"]) == {"silent"}


# --------------------------------------------------------------------------- learning
def test_tiny_avsyncnet_learns_synthetic_sync(trained_avsyncnet_path: Path) -> None:
    """tiny.yaml's AVSyncNet (the session fixture: 600 steps on synthetic clips) tells held-out in-sync
    from off-sync windows clearly better than chance, having started at chance."""
    saved = load_checkpoint(trained_avsyncnet_path, "avsyncnet")
    first, last = saved["metrics"]["history"][0], saved["metrics"]["latest"]
    assert first["step"] == 0 and abs(first["val_accuracy"] - 0.5) <= 0.05
    assert last["step"] == 600 and last["val_accuracy"] >= 0.65
    assert last["val_cos_positive"] > last["val_cos_negative"] + 0.1
    assert last["val_bce"] < first["val_bce"]
    _, net = load_avsyncnet(trained_avsyncnet_path)
    assert not net.training


def test_generator_l1_falls_on_held_out_frames(
    data: TrainData, avsyncnet_checkpoint: Path, silent_checkpoint: Path, tmp_path: Path
) -> None:
    """G_L trained for 20 steps (single windows, no perceptual term) reconstructs the held-out clip's
    frames better than at step 0 (measured on 8 held-out windows: val_l1 0.231 -> 0.204)."""
    config = dataclasses.replace(CONFIG, train=dataclasses.replace(CONFIG.train, val_windows=8))
    sources = {"avsyncnet": avsyncnet_checkpoint, "silent": silent_checkpoint}
    result = train_stage("generator", config, data, tmp_path, sources=sources, steps=20)
    first, last = result.history[0], result.history[-1]
    assert (first["step"], last["step"]) == (0, 20)
    assert last["val_l1"] < first["val_l1"] - 0.01, (first["val_l1"], last["val_l1"])


# --------------------------------------------------------------------------- CLI
def test_cli_trains_avsyncnet(root: Path, tmp_path: Path) -> None:
    from tfbench.cli import app
    from tfbench.cli import train as _train  # noqa: F401  (registers `tfbench train`)

    config = save_config(CONFIG, tmp_path / "fast.yaml")
    args = ["--device", "cpu", "train", "avsyncnet", "--dataset", "synthetic", "--root", str(root)]
    args += ["--split", "test", "--config", str(config), "--out", str(tmp_path / "out"), "--steps", "2"]
    result = CliRunner().invoke(app, [*args, "--detector", "none"])
    assert result.exit_code == 0, result.output
    assert "val_accuracy" in result.output and "checkpoint:" in result.output
    assert load_checkpoint(tmp_path / "out" / "last.pt", "avsyncnet")["step"] == 2
    bad = CliRunner().invoke(app, [*args, "--detector", "none", "--config", "nope"])
    assert bad.exit_code == 2 and "bundled configs" in bad.output
    export = ["train", "export", str(tmp_path / "out" / "last.pt"), str(tmp_path / "x.pt"), "--label", "demo"]
    result = CliRunner().invoke(app, export)
    assert result.exit_code == 0, result.output
    assert f"sha256 {sha256_file(tmp_path / 'x.pt')}" in result.output.replace("\n", "")
    assert load_checkpoint(tmp_path / "x.pt")["label"] == "demo"


# --------------------------------------------------------------------------- slow
@pytest.fixture
def selected_slow(request: pytest.FixtureRequest) -> None:
    """Run only when asked for with `-m slow` (also when the project's addopts are overridden)."""
    expression = str(request.config.getoption("markexpr", "") or "")
    if "slow" not in expression.replace("not slow", ""):
        pytest.skip("slow: run with -m slow")


@pytest.mark.slow
@pytest.mark.usefixtures("selected_slow")
def test_paper_config_runs_one_step_per_stage(data: TrainData, tmp_path: Path) -> None:
    """The full-size networks of paper.yaml train one step per stage on the CPU (batches of 2 windows; a
    random VGG19 stands in for the ImageNet one, which is not downloaded in tests)."""
    paper = load_config("paper")
    batches = {s: dataclasses.replace(getattr(paper.train, s), batch_size=2) for s in STAGES}
    train = dataclasses.replace(paper.train, val_windows=2, num_workers=0, **batches)
    loss = dataclasses.replace(paper.loss, perceptual_pretrained=False)
    config = dataclasses.replace(paper, loss=loss, train=train)
    sources: dict[str, Path | None] = {}
    for stage in STAGES:
        result = train_stage(stage, config, data, tmp_path / stage, sources=sources, steps=1)
        assert result.step == 1 and all(np.isfinite(v) for v in result.metrics.values())
        sources[stage] = result.checkpoint
    _, lip, silent = load_generators(tmp_path / "generator" / "last.pt")
    assert silent is not None and sum(p.numel() for p in lip.trainable_parameters()) > 30_000_000
