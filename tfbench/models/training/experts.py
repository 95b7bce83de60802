"""The pieces the stages share: the lip-sync expert behind the sync losses, and mixed precision.

The ablation switch `sync_expert` picks the network whose similarity x = sim(generated, audio) the sync loss
uses: "avsyncnet" (the paper's, trained by `tfbench train avsyncnet`; cosine in [-1, 1], probability
sigmoid(logit_scale * cos)) or "syncnet" (Wav2Lip's published expert, weights entry `wav2lip_syncnet`; the
cosine of ReLU'd embeddings in [0, 1] is its probability). Both take 5-frame windows (B, 5, 3, 96, 96) RGB in
[0, 1] and the first frame's mel window (B, 1, 80, 16); both stay frozen and in eval mode.

Mixed precision (`Precision`) is used on CUDA only: autocast to bfloat16 where the GPU supports it (no loss
scaling needed), else float16 with one `GradScaler` per optimiser; on the CPU every step runs in float32, so
CPU runs are bit-reproducible. Loss terms are computed from float32 casts of the networks' outputs.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from tfbench.models.avsyncnet import AVSyncNet, visual_input
from tfbench.models.config import ModelConfig

__all__ = ["AVSyncNetExpert", "Precision", "SyncExpert", "Wav2LipExpert", "create_expert"]


class SyncExpert(Protocol):
    """A frozen lip-sync expert: window-audio similarity and the probability the plain sync loss uses."""

    def similarity(self, windows: Tensor, mel: Tensor) -> Tensor: ...

    def probability(self, similarity: Tensor) -> Tensor: ...


class AVSyncNetExpert:
    """AVSyncNet as the expert: the cosine of its embeddings of the windows' lower halves and the mel."""

    def __init__(self, net: AVSyncNet) -> None:
        self.net = net

    def similarity(self, windows: Tensor, mel: Tensor) -> Tensor:
        return self.net.similarity(visual_input(windows, self.net.config.visual_size), mel).float()

    def probability(self, similarity: Tensor) -> Tensor:
        return self.net.sync_probability(similarity)


class Wav2LipExpert:
    """Wav2Lip's expert SyncNet: lower halves flipped to BGR and stacked frame-major into 15 channels."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.net = net

    def similarity(self, windows: Tensor, mel: Tensor) -> Tensor:
        faces = windows[..., windows.shape[-2] // 2 :, :].flip(2).flatten(1, 2)
        audio, video = self.net(mel, faces)
        return F.cosine_similarity(audio.float(), video.float(), dim=-1)

    def probability(self, similarity: Tensor) -> Tensor:
        return similarity.clamp(0.0, 1.0)


def create_expert(
    config: ModelConfig, avsyncnet: AVSyncNet, device: torch.device, overrides: dict[str, Path] | None
) -> SyncExpert:
    """The expert `config.ablation.sync_expert` names (Wav2Lip's is loaded through the weights registry)."""
    if config.ablation.sync_expert == "avsyncnet":
        return AVSyncNetExpert(avsyncnet)
    from tfbench.models.wav2lip_syncnet import load_wav2lip_syncnet
    from tfbench.weights import resolve

    net = load_wav2lip_syncnet(resolve("wav2lip_syncnet", overrides), device).requires_grad_(False)
    return Wav2LipExpert(net)


class Precision:
    """Autocast and loss scaling on CUDA when `enabled`; a no-op in float32 elsewhere."""

    def __init__(self, device: torch.device, enabled: bool) -> None:
        self.device = device
        self.enabled = enabled and device.type == "cuda"
        bf16 = self.enabled and torch.cuda.is_bf16_supported()
        self.dtype = torch.bfloat16 if bf16 else torch.float16
        self.scale = self.enabled and not bf16
        self.scalers: dict[str, torch.amp.GradScaler] = {}

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def _scaler(self, name: str) -> torch.amp.GradScaler:
        if name not in self.scalers:
            self.scalers[name] = torch.amp.GradScaler("cuda", enabled=self.scale)
        return self.scalers[name]

    def step(self, name: str, loss: Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward `loss` and step `optimizer` (gradients cleared first), scaled where float16 needs it."""
        scaler = self._scaler(name)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {name: scaler.state_dict() for name, scaler in self.scalers.items() if self.scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            if self.scale and value:
                self._scaler(name).load_state_dict(value)
