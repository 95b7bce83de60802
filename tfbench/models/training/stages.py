"""The training stages' shared shape (`Stage`) and the first stage, AVSyncNet.

Each stage owns its networks (`modules`, all saved in its checkpoint), its optimisers, its training windows,
one `train_step` and a `validate` on fixed held-out windows. Adam throughout; the generators and the
discriminator use betas (0.5, 0.999) as Wav2Lip's GAN training does, AVSyncNet torch's defaults. The
generator stages are in `generator_stages`.

- avsyncnet: BCE on sync probabilities of balanced pairs: a window with its own mel window (positive) or
  with the mel window of a non-overlapping window of the same clip (negative). Validation: accuracy
  (p > 0.5), BCE and the mean cosine of positives and of negatives on held-out clips.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, default_collate

from tfbench.errors import TfbenchError
from tfbench.models.avsyncnet import AVSyncNet, visual_input
from tfbench.models.config import ModelConfig, StageTrainConfig
from tfbench.models.training.data import (
    SyncWindows,
    TrainData,
    to_frames,
)
from tfbench.models.training.experts import Precision

__all__ = ["SOURCE_HELP", "AVSyncNetStage", "Batch", "Stage", "mean_of"]

Batch = Mapping[str, Tensor]
_VAL_POSITION = 1 << 40
"""Validation items use sample positions from here on, far from any training step's."""


SOURCE_HELP = {
    "avsyncnet": "the AVSyncNet checkpoint of `tfbench train avsyncnet` (--avsyncnet PATH), whose frozen "
    "audio encoder goes into the generator",
    "silent": "G_S, the checkpoint of `tfbench train silent` (--silent PATH), or a config with "
    "ablation.use_silent_generator: false",
}
"""What each earlier-stage checkpoint is, for error messages."""


def _fixed_batches(dataset: Dataset[dict[str, np.ndarray]], size: int, n: int, batch: int) -> list[Any]:
    """`n` items spread evenly over the dataset, collated into batches of `batch`: a fixed validation set."""
    count = min(n, size)
    items = [dataset[(k * size // count, _VAL_POSITION + k)] for k in range(count)]
    return [default_collate(items[i : i + batch]) for i in range(0, count, batch)]


def mean_of(values: Sequence[Tensor]) -> float:
    return float(torch.cat([v.reshape(-1).float().cpu() for v in values]).mean())


class Stage(ABC):
    """One stage: networks, optimisers, data, a training step, validation. See the module docstring."""

    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()
    """Checkpoints of earlier stages this one starts from (names of `init_from`'s arguments)."""

    def __init__(
        self,
        config: ModelConfig,
        device: torch.device,
        precision: Precision,
        overrides: dict[str, Path] | None = None,
    ) -> None:
        self.config, self.device, self.precision, self.overrides = config, device, precision, overrides
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    @property
    def settings(self) -> StageTrainConfig:
        settings: StageTrainConfig = getattr(self.config.train, self.name)
        return settings

    def _adam(self, name: str, betas: tuple[float, float] = (0.5, 0.999)) -> None:
        params = [p for p in self.modules[name].parameters() if p.requires_grad]
        self.optimizers[name] = torch.optim.Adam(params, lr=self.settings.lr, betas=betas)

    def _validation(self, dataset: Dataset[dict[str, np.ndarray]], size: int) -> list[Any]:
        """The fixed validation batches: `train.val_windows` items of `dataset` in batches of the stage."""
        return _fixed_batches(dataset, size, self.config.train.val_windows, self.settings.batch_size)

    def to_device(self) -> None:
        for module in self.modules.values():
            module.to(self.device)

    @classmethod
    def required_sources(cls, config: ModelConfig) -> tuple[str, ...]:
        """The earlier stages' checkpoints a fresh run of this stage needs under `config`."""
        return ()

    @classmethod
    def check_sources(cls, config: ModelConfig, sources: Mapping[str, Path | None]) -> None:
        """Raise before any work when a needed checkpoint of an earlier stage is not given or missing."""
        for name in cls.required_sources(config):
            path = sources.get(name)
            if path is None:
                raise TfbenchError(f"stage {cls.name} needs {SOURCE_HELP[name]}")
            if not Path(path).is_file():
                raise TfbenchError(f"--{name} {path}: no such file")

    @abstractmethod
    def init_from(self, sources: Mapping[str, Path | None]) -> dict[str, str]:
        """Load the earlier stages' networks from their checkpoints; returns the paths used."""

    def resumed(self, sources: Mapping[str, str]) -> None:
        """Called after the stage's state was loaded from its checkpoint; `sources` as saved there."""
        return None  # nothing to restore beyond the networks and optimisers, unless a stage says so

    @abstractmethod
    def datasets(self, data: TrainData) -> tuple[Dataset[dict[str, np.ndarray]], int, list[Any]]:
        """(training dataset, its size, fixed validation batches)."""

    @abstractmethod
    def train_step(self, batch: Batch) -> dict[str, float]:
        """One optimisation step; returns the loss terms as floats."""

    @abstractmethod
    def validate(self, batches: Sequence[Batch]) -> dict[str, float]:
        """Metrics on the fixed validation batches (networks in eval mode, restored afterwards)."""

    @abstractmethod
    def train_mode(self) -> None:
        """Put the trained networks in training mode and the frozen ones in eval mode."""


class AVSyncNetStage(Stage):
    name = "avsyncnet"

    def __init__(
        self,
        config: ModelConfig,
        device: torch.device,
        precision: Precision,
        overrides: dict[str, Path] | None = None,
    ) -> None:
        super().__init__(config, device, precision, overrides)
        self.net = AVSyncNet(config.avsyncnet)
        self.modules["avsyncnet"] = self.net
        self.to_device()
        self._adam("avsyncnet", betas=(0.9, 0.999))

    def init_from(self, sources: Mapping[str, Path | None]) -> dict[str, str]:
        return {}

    def datasets(self, data: TrainData) -> tuple[Dataset[dict[str, np.ndarray]], int, list[Any]]:
        seed = self.config.train.seed
        dataset, val = SyncWindows(data.store, data.train, seed), SyncWindows(data.store, data.val, seed)
        return dataset, len(dataset), self._validation(val, len(val))

    def _similarity(self, batch: Batch) -> Tensor:
        frames = visual_input(to_frames(batch["frames"], self.device), self.config.avsyncnet.visual_size)
        with self.precision.autocast():
            return self.net.similarity(frames, batch["mel"].to(self.device)).float()

    def train_step(self, batch: Batch) -> dict[str, float]:
        loss = self.net.loss(self._similarity(batch), batch["label"].to(self.device))
        self.precision.step("avsyncnet", loss, self.optimizers["avsyncnet"])
        return {"bce": float(loss.detach())}

    @torch.no_grad()
    def validate(self, batches: Sequence[Batch]) -> dict[str, float]:
        self.net.eval()
        sims, labels = [], []
        for batch in batches:
            sims.append(self._similarity(batch).cpu())
            labels.append(batch["label"].float())
        self.train_mode()
        sim, label = torch.cat(sims), torch.cat(labels)
        predicted = (self.net.sync_probability(sim) > 0.5).float()
        return {
            "val_accuracy": float((predicted == label).float().mean()),
            "val_bce": float(self.net.loss(sim, label)),
            "val_cos_positive": float(sim[label == 1].mean()),
            "val_cos_negative": float(sim[label == 0].mean()),
        }

    def train_mode(self) -> None:
        self.net.train()
