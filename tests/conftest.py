"""Session fixtures shared by test modules. Kept to what is costly to build twice; imports are lazy, so a
session that does not use a fixture pays nothing for it.

`trained_syncnet_path`: syncnet_python's `S` briefly trained on synthetic talking faces and saved as a
published-format `syncnet_v2.model` (plain state_dict) in the session's temporary folder, so tests load it
with `load_syncnet_v2` and score through the normal metric code. Built only when a test asks for it:
about 40 s wall / 55 s CPU on two idle cores (two to three times that on a loaded machine), mostly the
conv features of the 336 training windows and 600 steps of the FC heads (see
`tfbench.models.syncnet_training` for why only the heads are trained on CPU).
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
