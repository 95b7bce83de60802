"""End-to-end sync: an `S` briefly trained on synthetic faces finds the planted AV offsets through the metric.

The model comes from the session fixture `trained_syncnet_path` (tests/conftest.py): trained on 16 in-sync
identities (seed 1000), saved as a published-format `syncnet_v2.model`, loaded with `load_syncnet_v2`.
The held-out clips below are other identities with other audio (seed 2000), most with a planted offset of
1..8 frames (syncnet_python's sign: > 0 means the video lags the audio), scored by `lse_for_clip_wav`.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tfbench.data.synthetic import SynthConfig
from tfbench.metrics.lse import LSEResult, lse_for_clip_wav
from tfbench.models.syncnet_python import SyncNetS, load_syncnet_v2
from tfbench.models.syncnet_training import (
    SyncClip,
    TrainConfig,
    sync_clip,
    synthetic_sync_clips,
    train_syncnet,
)

HELD_OUT = SynthConfig(
    "lrs2", speakers=12, clips=1, seconds=1.6, seed=2000, offset_fraction=0.8, max_offset=8
)
"""12 clips of 40 frames (35 windows); with this seed 8 of them carry a nonzero offset (-4..7)."""
IN_SYNC = dataclasses.replace(HELD_OUT, seconds=2.0, offset_fraction=0.0)
"""The same identities (same seed), 50 frames, no planted offset."""
SHIFT = 8
SHIFT_CLIPS = 4


@pytest.fixture(scope="module")
def trained(trained_syncnet_path: Path) -> SyncNetS:
    return load_syncnet_v2(trained_syncnet_path)


@pytest.fixture(scope="module")
def held_out() -> list[SyncClip]:
    return synthetic_sync_clips(HELD_OUT)


def _score(model: SyncNetS, frames: np.ndarray, wav: np.ndarray) -> LSEResult:
    return lse_for_clip_wav(model, torch.from_numpy(np.ascontiguousarray(frames)), wav)


def _recovery(model: SyncNetS, clips: list[SyncClip]) -> tuple[float, list[tuple[int, int | None]]]:
    """Share of clips whose reported offset is within +-1 frame of the planted one, and the pairs."""
    pairs = [(clip.offset, _score(model, clip.frames, clip.wav).offset) for clip in clips]
    hits = [found is not None and abs(found - planted) <= 1 for planted, found in pairs]
    return sum(hits) / len(hits), pairs


def test_the_trained_file_is_a_published_format_state_dict(trained_syncnet_path: Path) -> None:
    state = torch.load(trained_syncnet_path, weights_only=True)
    expected = [k for k in SyncNetS().state_dict() if not k.endswith("num_batches_tracked")]
    assert list(state) == expected


def test_trained_s_recovers_the_planted_offsets(trained: SyncNetS, held_out: list[SyncClip]) -> None:
    planted = [clip.offset for clip in held_out]
    assert sum(o != 0 for o in planted) >= len(planted) // 2, planted  # a real test: mostly nonzero offsets
    rate, pairs = _recovery(trained, held_out)
    print(f"offset recovery (planted, found): {pairs}; rate {rate:.3f}")
    assert rate >= 0.8, f"offsets recovered within +-1 frame for {rate:.0%} of clips: {pairs}"


def test_in_sync_clips_score_better_than_the_same_clips_shifted_by_8_frames(trained: SyncNetS) -> None:
    """In sync: frames[8:] with audio from frame 8 on; shifted: frames[:-8] with that same audio (the video
    lags by 8 frames). Same audio, same length: only the alignment differs."""
    clips = synthetic_sync_clips(IN_SYNC, [(s, 0) for s in range(SHIFT_CLIPS)])
    in_sync, shifted = [], []
    for clip in clips:
        audio = clip.wav[SHIFT * 640 :]
        in_sync.append(_score(trained, clip.frames[SHIFT:], audio))
        shifted.append(_score(trained, clip.frames[:-SHIFT], audio))
    summary = [(round(a.conf, 2), round(b.conf, 2), round(a.min_dist, 2), round(b.min_dist, 2)) for a, b in
               zip(in_sync, shifted, strict=True)]  # fmt: skip
    print(f"(LSE-C in sync, shifted, LSE-D in sync, shifted) per clip: {summary}")
    assert np.mean([r.conf for r in in_sync]) > np.mean([r.conf for r in shifted]), summary
    assert np.mean([r.min_dist for r in in_sync]) < np.mean([r.min_dist for r in shifted]), summary
    assert all(r.offset is not None and abs(r.offset) <= 1 for r in in_sync), [r.offset for r in in_sync]
    found = [r.offset for r in shifted]  # the video lags by 8: syncnet_python reports +8
    assert sum(o is not None and abs(o - SHIFT) <= 1 for o in found) >= SHIFT_CLIPS - 1, found


@pytest.mark.slow
def test_the_same_s_before_training_fails_the_offset_criterion(
    trained_syncnet_path: Path, held_out: list[SyncClip]
) -> None:
    """Control: the trained file with its FC heads put back to their seeded initial values is exactly the
    network before training (the conv towers were frozen). It must not pass the offset test."""
    model = load_syncnet_v2(trained_syncnet_path)
    torch.manual_seed(0)  # the trainer's seed: SyncNetS() then draws the heads training started from
    fresh = SyncNetS()
    model.netfclip.load_state_dict(fresh.netfclip.state_dict())
    model.netfcaud.load_state_dict(fresh.netfcaud.state_dict())
    rate, pairs = _recovery(model.eval(), held_out)
    print(f"untrained: offset recovery (planted, found): {pairs}; rate {rate:.3f}")
    assert rate < 0.8, pairs


def test_full_training_mode_updates_every_layer() -> None:
    """`train_from="all"` (the GPU mode) trains the towers too; one step on two tiny clips, on the CPU."""
    rng = np.random.default_rng(0)
    wav = rng.uniform(-0.5, 0.5, 7 * 640).astype(np.float32)
    clips = [sync_clip(rng.integers(0, 256, (7, 224, 224, 3), dtype=np.uint8), wav) for _ in range(2)]
    torch.manual_seed(3)
    model = SyncNetS()
    first_conv = model.netcnnlip[0]
    assert isinstance(first_conv, torch.nn.Conv3d)
    before = first_conv.weight.detach().clone()
    config = TrainConfig(steps=1, batch_size=2, train_from="all", seed=3)
    result = train_syncnet(clips, config, model)
    assert len(result.losses) == 1 and math.isfinite(result.losses[0])
    assert not torch.equal(first_conv.weight, before)  # trained in place: `model` is the result's network
    assert result.model is model
    assert not result.model.training
