"""The generator stages: the silent-lip generator G_S (`silent`) and the lip-sync generator G_L (`generator`).

- silent (G_S; GAN + L1 + perceptual only, no sync loss, as the paper trains it). The paper gives no
  closed-lip ground truth, so tfbench's practical objective is: targets are the windows whose audio is
  silent (`TrainConfig.silence_level`; a speaker's lips are closed in their pauses, and the synthetic data
  closes them exactly there); G_S gets an identity reference window from elsewhere in the clip (open or
  closed mouth), the target with its lower half masked as the pose, and the silent mel (`silent_mel`), and
  must produce the target: the reference's identity with closed lips. Validation: L1 on held-out silent
  windows, and AVSyncNet's cosine of GT and generated windows with their (silent) mel windows.
- generator (G_L): the identity input is G_S's closed-lip version of the reference window (frozen G_S; the
  reference itself when `ablation.use_silent_generator` is off), the pose the masked target, the mel each
  frame's window. Loss per config: weights.gan * L_GAN + pix * L1 + per * L_per + sync * (L_ss or plain
  sync loss per `ablation.sync_loss`, on the expert `ablation.sync_expert`) + triplet * L_at (when
  `ablation.use_triplet`). In L_ss, x = sim(generated, audio), y = sim(GT, audio), d = sim(identity input,
  audio): the reference as G_L sees it. Validation: L1 (whole face and lower half) on held-out windows and
  AVSyncNet's sync cosine of GT vs generated windows with their audio (and the mean gap |x - y|).
A loss term whose weight is 0 is not computed (a random-VGG perceptual term costs most of a CPU step).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from tfbench.errors import TfbenchError
from tfbench.models.avsyncnet import AVSyncNet, visual_input
from tfbench.models.config import ModelConfig
from tfbench.models.discriminator import PatchDiscriminator
from tfbench.models.generator import Generator, silent_mel
from tfbench.models.losses import (
    PerceptualLoss,
    adaptive_triplet_loss,
    gan_discriminator_loss,
    gan_generator_loss,
    pixel_loss,
    plain_sync_loss,
    stabilized_sync_loss,
    total_loss,
    triplet_embedding,
)
from tfbench.models.training.checkpoint import (
    copy_audio_encoder,
    load_checkpoint,
    load_state,
    make_generator,
)
from tfbench.models.training.data import FaceWindows, TrainData, all_starts, silent_starts, to_frames
from tfbench.models.training.experts import Precision, SyncExpert, create_expert
from tfbench.models.training.stages import Batch, Stage, mean_of

__all__ = ["GeneratorStage", "SilentStage"]


class _GeneratorStageBase(Stage):
    """What G_S and G_L training share: a generator, a discriminator, the frozen AVSyncNet, image losses."""

    trained: ClassVar[str]

    def __init__(
        self,
        config: ModelConfig,
        device: torch.device,
        precision: Precision,
        overrides: dict[str, Path] | None = None,
    ) -> None:
        super().__init__(config, device, precision, overrides)
        self.generator = make_generator(config)
        self.discriminator = PatchDiscriminator(config.discriminator)
        self.avsyncnet = AVSyncNet(config.avsyncnet).requires_grad_(False)
        self.modules.update(
            {self.trained: self.generator, "discriminator": self.discriminator, "avsyncnet": self.avsyncnet}
        )
        self.has_avsyncnet = False
        self.weights = config.loss.weights
        self.perceptual = (
            PerceptualLoss(config.loss.perceptual_pretrained, overrides=overrides).to(device)
            if self.weights.per
            else None
        )

    def _init_avsyncnet(self, path: Path | None) -> dict[str, str]:
        """Load the trained AVSyncNet (when given) and copy its audio encoder into the generator."""
        if path is None:
            return {}
        data = load_checkpoint(path)
        load_state(self.avsyncnet, data["models"]["avsyncnet"], str(path), "AVSyncNet")
        self.has_avsyncnet = True
        copy_audio_encoder(self.generator, self.avsyncnet)
        return {"avsyncnet": str(path)}

    def resumed(self, sources: Mapping[str, str]) -> None:
        self.has_avsyncnet = "avsyncnet" in sources

    def _image_losses(self, out: Tensor, target: Tensor) -> dict[str, Tensor]:
        parts = {"pix": pixel_loss(out, target)}
        if self.perceptual is not None:
            parts["per"] = self.perceptual(out, target)
        if self.weights.gan:
            parts["gan"] = gan_generator_loss(self.discriminator(out).float(), self.config.loss.gan)
        return parts

    def _step(self, parts: dict[str, Tensor], out: Tensor, target: Tensor) -> dict[str, float]:
        """The generator step on `parts`, then the discriminator step on detached `out`."""
        total = total_loss(parts, self.weights)
        self.precision.step(self.trained, total, self.optimizers[self.trained])
        losses = {name: float(value.detach()) for name, value in parts.items()}
        losses["total"] = float(total.detach())
        if self.weights.gan:
            with self.precision.autocast():
                real, fake = self.discriminator(target), self.discriminator(out.detach())
            d_loss = gan_discriminator_loss(real.float(), fake.float(), self.config.loss.gan)
            self.precision.step("discriminator", d_loss, self.optimizers["discriminator"])
            losses["disc"] = float(d_loss.detach())
        return losses

    def _sync_metrics(self, out: Tensor, target: Tensor, mel: Tensor) -> tuple[Tensor, Tensor]:
        """AVSyncNet's cosine of generated and GT windows with the first frame's mel window."""
        size = self.config.avsyncnet.visual_size
        x = self.avsyncnet.similarity(visual_input(out, size), mel)
        y = self.avsyncnet.similarity(visual_input(target, size), mel)
        return x.float(), y.float()

    def train_mode(self) -> None:
        self.generator.train()
        self.discriminator.train()
        self.avsyncnet.eval()


class SilentStage(_GeneratorStageBase):
    name = "silent"
    trained = "silent"
    needs = ("avsyncnet",)

    def __init__(
        self,
        config: ModelConfig,
        device: torch.device,
        precision: Precision,
        overrides: dict[str, Path] | None = None,
    ) -> None:
        super().__init__(config, device, precision, overrides)
        self.to_device()
        self._adam("silent")
        self._adam("discriminator")

    @classmethod
    def required_sources(cls, config: ModelConfig) -> tuple[str, ...]:
        return ("avsyncnet",) if config.ablation.audio_encoder != "joint" else ()

    def init_from(self, sources: Mapping[str, Path | None]) -> dict[str, str]:
        self.check_sources(self.config, sources)
        return self._init_avsyncnet(sources.get("avsyncnet"))

    def datasets(self, data: TrainData) -> tuple[Dataset[dict[str, np.ndarray]], int, list[Any]]:
        train, level = self.config.train, self.config.train.silence_level
        windows = silent_starts(data.store, data.train, level)
        held_out = silent_starts(data.store, data.val, level)
        if not windows or not held_out:
            raise TfbenchError(
                f"the silent stage found {len(windows)} training and {len(held_out)} validation windows "
                f"whose mel stays below train.silence_level {level}; both need some (raise the level for "
                f"noisy recordings, or hold out more clips)"
            )
        val = FaceWindows(data.store, held_out, train.seed)
        return FaceWindows(data.store, windows, train.seed), len(windows), self._validation(val, len(val))

    def _generate(self, batch: Batch) -> tuple[Tensor, Tensor]:
        target = to_frames(batch["target"], self.device)
        reference = to_frames(batch["reference"], self.device)
        mel = silent_mel(target.shape[:2], device=self.device)
        with self.precision.autocast():
            out = self.generator(reference, target, mel)
        return out.float(), target

    def train_step(self, batch: Batch) -> dict[str, float]:
        out, target = self._generate(batch)
        with self.precision.autocast():
            parts = self._image_losses(out, target)
        return self._step(parts, out, target)

    @torch.no_grad()
    def validate(self, batches: Sequence[Batch]) -> dict[str, float]:
        self.generator.eval()
        l1, xs, ys = [], [], []
        for batch in batches:
            out, target = self._generate(batch)
            l1.append((out - target).abs().mean(dim=(1, 2, 3, 4)))
            if self.has_avsyncnet:
                x, y = self._sync_metrics(out, target, batch["mel"][:, 0].to(self.device))
                xs.append(x)
                ys.append(y)
        self.train_mode()
        metrics = {"val_l1": mean_of(l1)}
        if xs:
            metrics |= {"val_sync_generated": mean_of(xs), "val_sync_gt": mean_of(ys)}
        return metrics


class GeneratorStage(_GeneratorStageBase):
    name = "generator"
    trained = "generator"
    needs = ("avsyncnet", "silent")

    def __init__(
        self,
        config: ModelConfig,
        device: torch.device,
        precision: Precision,
        overrides: dict[str, Path] | None = None,
    ) -> None:
        super().__init__(config, device, precision, overrides)
        self.silent: Generator | None = None
        if config.ablation.use_silent_generator:
            self.silent = self.modules["silent"] = make_generator(config).requires_grad_(False)
        self.to_device()
        self._adam("generator")
        self._adam("discriminator")
        self.expert: SyncExpert = create_expert(config, self.avsyncnet, device, overrides)
        self.train_mode()

    @classmethod
    def required_sources(cls, config: ModelConfig) -> tuple[str, ...]:
        return ("avsyncnet", "silent") if config.ablation.use_silent_generator else ("avsyncnet",)

    def init_from(self, sources: Mapping[str, Path | None]) -> dict[str, str]:
        self.check_sources(self.config, sources)
        used = self._init_avsyncnet(sources.get("avsyncnet"))
        path = sources.get("silent")
        if self.silent is not None and path is not None:
            load_state(self.silent, load_checkpoint(path, "silent")["models"]["silent"], str(path), "G_S")
            used["silent"] = str(path)
        return used

    def datasets(self, data: TrainData) -> tuple[Dataset[dict[str, np.ndarray]], int, list[Any]]:
        seed, windows = self.config.train.seed, all_starts(data.store, data.train)
        val = FaceWindows(data.store, all_starts(data.store, data.val), seed)
        return FaceWindows(data.store, windows, seed), len(windows), self._validation(val, len(val))

    def _generate(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        target = to_frames(batch["target"], self.device)
        identity = to_frames(batch["reference"], self.device)
        mel = batch["mel"].to(self.device)
        with self.precision.autocast():
            if self.silent is not None:
                with torch.no_grad():
                    identity = self.silent.close_lips(identity).float()
            out = self.generator(identity, target, mel)
        return out.float(), target, identity, mel

    def train_step(self, batch: Batch) -> dict[str, float]:
        out, target, identity, mel = self._generate(batch)
        ablation, loss = self.config.ablation, self.config.loss
        with self.precision.autocast():
            parts = self._image_losses(out, target)
            if self.weights.sync:
                x = self.expert.similarity(out, mel[:, 0])
                with torch.no_grad():
                    y = self.expert.similarity(target, mel[:, 0])
                    d = self.expert.similarity(identity, mel[:, 0])
                if ablation.sync_loss == "stabilized":
                    parts["sync"] = stabilized_sync_loss(x, y, d, loss.sync_eps)
                else:
                    parts["sync"] = plain_sync_loss(self.expert.probability(x))
            if ablation.use_triplet and self.weights.triplet:
                space = loss.triplet_space
                anchor = triplet_embedding(out, space, self.avsyncnet).float()
                with torch.no_grad():
                    positive = triplet_embedding(target, space, self.avsyncnet).float()
                    negative = triplet_embedding(identity, space, self.avsyncnet).float()
                parts["triplet"] = adaptive_triplet_loss(
                    anchor, positive, negative, loss.triplet_margin, loss.triplet_margin_form
                )
        return self._step(parts, out, target)

    @torch.no_grad()
    def validate(self, batches: Sequence[Batch]) -> dict[str, float]:
        self.generator.eval()
        l1, mouth, xs, ys = [], [], [], []
        for batch in batches:
            out, target, _, mel = self._generate(batch)
            error = (out - target).abs()
            l1.append(error.mean(dim=(1, 2, 3, 4)))
            mouth.append(error[..., error.shape[-2] // 2 :, :].mean(dim=(1, 2, 3, 4)))
            x, y = self._sync_metrics(out, target, mel[:, 0])
            xs.append(x)
            ys.append(y)
        self.train_mode()
        x, y = torch.cat(xs), torch.cat(ys)
        return {
            "val_l1": mean_of(l1),
            "val_l1_lower_half": mean_of(mouth),
            "val_sync_generated": float(x.mean()),
            "val_sync_gt": float(y.mean()),
            "val_sync_gap": float((x - y).abs().mean()),
        }

    def train_mode(self) -> None:
        super().train_mode()
        if self.silent is not None:
            self.silent.eval()
