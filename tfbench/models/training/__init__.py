"""Training the paper's networks: `tfbench train avsyncnet`, then `silent` (G_S), then `generator` (G_L).

- `data`: clips from the face-crop cache, 5-frame windows with their mel windows, step-keyed batches;
- `experts`: the frozen lip-sync expert behind the sync losses, and mixed precision (CUDA only);
- `stages`, `generator_stages`: the three stages, their losses and their validation;
- `checkpoint`: atomic checkpoints holding config, step, metrics, networks, optimisers and RNG state;
- `loop`: `train_stage`, the loop they share (seeding, resume, validation, checkpoints).

Typical use (what the CLI does)::

    data = prepare_data("lrs2", root, "train", preset("wav2lip", detector="s3fd"), CropCache())
    train_stage("avsyncnet", load_config("paper"), data, "runs/avsyncnet")
    train_stage("silent", config, data, "runs/silent", sources={"avsyncnet": Path("runs/avsyncnet/last.pt")})
    train_stage("generator", config, data, "runs/generator",
                sources={"avsyncnet": ..., "silent": Path("runs/silent/last.pt")})

The generator checkpoint is what the `ours` model loads (`tfbench.models.ours`).
"""

from tfbench.models.training.checkpoint import (
    CHECKPOINT_NAME,
    load_avsyncnet,
    load_checkpoint,
    load_generators,
)
from tfbench.models.training.data import TrainData, prepare_data
from tfbench.models.training.loop import STAGES, TrainResult, train_stage

__all__ = [
    "CHECKPOINT_NAME",
    "STAGES",
    "TrainData",
    "TrainResult",
    "load_avsyncnet",
    "load_checkpoint",
    "load_generators",
    "prepare_data",
    "train_stage",
]
