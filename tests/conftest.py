"""Session fixtures shared by test modules. Kept to what is costly to build twice; imports are lazy, so a
session that does not use a fixture pays nothing for it.

`trained_syncnet_path`: syncnet_python's `S` briefly trained on synthetic talking faces and saved as a
published-format `syncnet_v2.model` (plain state_dict) in the session's temporary folder, so tests load it
with `load_syncnet_v2` and score through the normal metric code. Built only when a test asks for it:
about 40 s wall / 55 s CPU on two idle cores (two to three times that on a loaded machine), mostly the
conv features of the 336 training windows and 600 steps of the FC heads (see
`tfbench.models.syncnet_training` for why only the heads are trained on CPU).

`trained_avsyncnet_path`: tiny.yaml's AVSyncNet trained by the real `train_stage("avsyncnet", ...)` on
synthetic clips, returned as the `OUT/last.pt` checkpoint `tfbench train avsyncnet` writes (load it with
`tfbench.models.training.load_avsyncnet`, or pass it as `--weights avsyncnet=PATH`).
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def trained_syncnet_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `syncnet_v2.model` file of an `S` trained on 16 in-sync synthetic identities (seed 1000).

    Training clips: lrs2 layout (160x160 faces; 224 crops by syncnet_python's rule on the whole-frame box),
    16 identities x 1 s: many short clips generalise to new faces better than few long ones (measured:
    8 x 2 s recovered 15 of 16 held-out offsets, 16 x 1 s all 16). Tests must draw their clips from another
    seed, so that identities and audio differ. Training: frozen seeded conv towers with calibrated
    BatchNorm, FC heads trained for 600 steps of 128 pairs, one thread for the steps.
    """
    from tfbench.data.synthetic import SynthConfig
    from tfbench.models.syncnet_training import (
        TrainConfig,
        save_syncnet_v2,
        synthetic_sync_clips,
        train_syncnet,
    )

    data = SynthConfig("lrs2", speakers=16, clips=1, seconds=1.0, seed=1000, offset_fraction=0.0)
    config = TrainConfig(steps=600, train_from="fc", calibration_windows=32, threads=1, seed=0)
    result = train_syncnet(synthetic_sync_clips(data), config)
    return save_syncnet_v2(result.model, tmp_path_factory.mktemp("syncnet") / "syncnet_v2.model")


AVSYNCNET_DATA_SEED = 1
"""Seed of the synthetic clips `trained_avsyncnet_path` trains on; tests that score it draw from another."""


@pytest.fixture(scope="session")
def trained_avsyncnet_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`OUT/last.pt` of tiny.yaml's AVSyncNet trained for 600 steps (batches of 16 pairs) on one thread.

    Data: synthetic lrs2 layout, 4 speakers x 4 clips of 3 s (seed `AVSYNCNET_DATA_SEED`); clips with a
    planted offset are left out, leaving 8 training and 3 held-out clips. Measured on this machine: held-out
    in-sync vs off-sync accuracy 0.50 at step 0 and 0.76 at step 600 (128 balanced held-out windows; cosine
    of positives 0.16, of negatives -0.13); the loss plateaus for ~400 steps before it learns, hence 600.
    Cost: about 8 s of data preparation and 65 s of training, CPU time on one thread. The checkpoint's
    `metrics.history` holds the step-0 and final validations.
    """
    import dataclasses

    import torch

    from tfbench.data.crop_cache import CropCache
    from tfbench.data.faces import preset
    from tfbench.data.synthetic import SynthConfig, write_dataset
    from tfbench.models.config import load_config
    from tfbench.models.training import prepare_data, train_stage

    base = tmp_path_factory.mktemp("avsyncnet")
    tiny = load_config("tiny")
    config = dataclasses.replace(
        tiny,
        train=dataclasses.replace(tiny.train, val_windows=128, val_interval=1000, checkpoint_interval=1000),
    )
    settings = preset("wav2lip", detector="none", coverage="full", min_track=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("TFBENCH_HOME", str(base / "home"))
            synth = SynthConfig("lrs2", speakers=4, clips=4, seconds=3.0, seed=AVSYNCNET_DATA_SEED)
            write_dataset(base / "data", synth)
            data = prepare_data("synthetic", base / "data", "test", settings, CropCache(), val_fraction=0.25)
            return train_stage("avsyncnet", config, data, base / "out", steps=600).checkpoint
    finally:
        torch.set_num_threads(threads)
