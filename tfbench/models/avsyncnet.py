"""AVSyncNet, the paper's lip-sync expert: ResNet-50 on the lower half of 5 frames, ResNetSE-34 on the mel.

Known from the paper (DESIGN.md section 5): a ResNet-50 visual encoder on the lower half of 5 frames
(112x224), a ResNetSE-34 audio encoder on the 16x80 mel window, cosine similarity, BCE training with
negatives from non-overlapping windows of the same clip. Choices tfbench makes where the paper is silent:

- Visual input: 5 RGB frames in [0, 1], stacked frame-major along channels (frame 0's RGB, then frame 1's,
  ..., as Wav2Lip's expert does) into 15 channels and mapped to [-1, 1] inside the network. The trunk has
  torchvision's ResNet-50 layout and parameter names (conv1, bn1, layer1..layer4, built from torchvision's
  own `Bottleneck`), with conv1 taking 15 channels; `visual_width` and `visual_layers` scale it (64 and
  [3, 4, 6, 3] = ResNet-50 exactly), so the tiny config keeps the network type at a fraction of the cost.
  No ImageNet initialisation (`weights=None`); residual branches start at zero (torchvision's
  zero_init_residual), which helps training from scratch.
- Audio input: the Wav2Lip mel window (B, 1, 80, 16) in [-4, 4], divided by 4. ResNetSE-34 follows
  voxceleb_trainer's ResNetSE34V2: a 3x3 stem, squeeze-and-excitation basic blocks [3, 4, 6, 3] at widths
  w, 2w, 4w, 8w (w = 32, SE reduction 8), stride 2 from the second stage on (80x16 -> 10x2), then
  self-attentive pooling over time of the (channels x frequency) columns, and a linear layer. Conv-BN-ReLU
  order is the standard one (voxceleb_trainer applies ReLU before BN in its blocks).
- Both encoders end in a linear layer to `embed_dim` and an L2 normalisation, so the similarity of a pair is
  the dot product (cosine) in [-1, 1]. No ReLU before the normalisation (Wav2Lip's expert has one, which
  confines its cosine to [0, 1] and uses it as the probability). The sync probability is a logistic of the
  cosine with a fixed scale, `sync_probability(cos) = sigmoid(logit_scale * cos)` (logit_scale 5 in both
  configs, so cos 0 -> 0.5, cos +-0.5 -> 0.92 / 0.08, range [0.0067, 0.9933]); BCE is computed on the
  logits, which is numerically stable. Monotonic, so cos > 0 <=> p > 0.5 and the stabilized sync loss can
  compare cosines directly. Measured here: on the toy signal of the tests the tiny AVSyncNet reached
  0.87-0.92 held-out accuracy in 60 steps (3 seeds) with this mapping, 0.83-0.86 with the parameter-free
  (cos + 1) / 2, whose BCE gradient never fades for pairs that are already correct.
- Training pairs (`sample_sync_pairs`): a positive is a 5-frame window with its own mel window; a negative
  pairs it with the mel window of another window of the same clip at least 5 frames away (no overlap),
  chosen uniformly; positives and negatives are balanced by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.resnet import Bottleneck, conv1x1

from tfbench.audio import MAX_ABS_VALUE, MEL_WINDOW, N_MELS
from tfbench.errors import TfbenchError
from tfbench.models.config import DEFAULT_LOGIT_SCALE, AVSyncNetConfig

__all__ = [
    "WINDOW_FRAMES",
    "AVSyncNet",
    "AudioEncoder",
    "SyncPair",
    "VisualEncoder",
    "bce_sync_loss",
    "cosine_similarity",
    "sample_sync_pairs",
    "stack_frames",
    "sync_probability",
    "visual_input",
]

WINDOW_FRAMES = 5
"""Video frames per sync window (0.2 s at 25 fps, the span of one 16-step mel window)."""


# --------------------------------------------------------------------------- inputs
def stack_frames(frames: Tensor) -> Tensor:
    """(B, 5, 3, H, W) -> (B, 15, H, W), frame-major; a (B, 15, H, W) input is returned unchanged."""
    if frames.ndim == 4 and frames.shape[1] == 3 * WINDOW_FRAMES:
        return frames
    if frames.ndim != 5 or frames.shape[1:3] != (WINDOW_FRAMES, 3):
        raise TfbenchError(
            f"video windows must be (B, 5, 3, H, W) or (B, 15, H, W), got {tuple(frames.shape)}"
        )
    return frames.flatten(1, 2)


def visual_input(faces: Tensor, size: tuple[int, int]) -> Tensor:
    """The AVSyncNet input from full face windows: lower half of (B, 5, 3, S, S), resized to `size`.

    Returns (B, 15, H, W) with (H, W) = `size`; the resize (bilinear, antialiased when shrinking) is skipped
    when the lower half already has that size (96 px faces and the tiny config's 48x96).
    """
    if faces.ndim != 5 or faces.shape[1:3] != (WINDOW_FRAMES, 3):
        raise TfbenchError(f"face windows must be (B, 5, 3, S, S), got {tuple(faces.shape)}")
    lower = faces[..., faces.shape[-2] // 2 :, :].flatten(1, 2)
    if tuple(lower.shape[-2:]) != tuple(size):
        lower = F.interpolate(lower, size=size, mode="bilinear", align_corners=False, antialias=True)
    return lower


def cosine_similarity(video_embedding: Tensor, audio_embedding: Tensor) -> Tensor:
    """Cosine of L2-normalised (B, D) embeddings, (B,) in [-1, 1] (re-normalised, so any input works)."""
    return F.cosine_similarity(video_embedding, audio_embedding, dim=-1, eps=1e-8)


def sync_probability(similarity: Tensor, logit_scale: float = DEFAULT_LOGIT_SCALE) -> Tensor:
    """The probability that a pair is in sync: sigmoid(logit_scale * cos), in (0, 1)."""
    return torch.sigmoid(logit_scale * similarity)


def bce_sync_loss(similarity: Tensor, label: Tensor, logit_scale: float = DEFAULT_LOGIT_SCALE) -> Tensor:
    """BCE of `sync_probability(similarity)` against labels (1 = in sync, 0 = not), mean over the batch.

    Computed from the logits logit_scale * cos, so it is finite and exact for every cosine in [-1, 1]
    (at most log(1 + e**logit_scale), about 5.0 for scale 5).
    """
    return F.binary_cross_entropy_with_logits(logit_scale * similarity, label.to(similarity.dtype))


# --------------------------------------------------------------------------- visual encoder
class VisualEncoder(nn.Module):
    """ResNet-50 layout (torchvision names) on 15 stacked channels -> L2-normalised (B, embed_dim)."""

    def __init__(self, config: AVSyncNetConfig) -> None:
        super().__init__()
        width = config.visual_width
        self.inplanes = width
        self.conv1 = nn.Conv2d(3 * WINDOW_FRAMES, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        stages = [
            self._make_layer(width * 2**i, n, 1 if i == 0 else 2) for i, n in enumerate(config.visual_layers)
        ]
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.inplanes, config.embed_dim)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, Bottleneck) and m.bn3.weight is not None:
                nn.init.zeros_(
                    m.bn3.weight
                )  # torchvision's zero_init_residual: each block starts as identity

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        """torchvision's `ResNet._make_layer` with a free base width (64 gives ResNet-50's widths)."""
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * Bottleneck.expansion, stride),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, frames: Tensor) -> Tensor:
        x = stack_frames(frames) * 2.0 - 1.0
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return F.normalize(self.fc(torch.flatten(self.avgpool(x), 1)), dim=-1)


# --------------------------------------------------------------------------- audio encoder
class SqueezeExcitation(nn.Module):
    """Channel attention (Hu et al. 2018): global average, bottleneck MLP, sigmoid gate per channel."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels)
        )

    def forward(self, x: Tensor) -> Tensor:
        gate = torch.sigmoid(self.fc(x.mean(dim=(2, 3))))
        return x * gate[:, :, None, None]


class SEBasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs) with squeeze-and-excitation before the residual sum."""

    def __init__(self, c_in: int, c_out: int, stride: int, reduction: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.se = SqueezeExcitation(c_out, reduction)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.se(self.bn2(self.conv2(out)))
        return F.relu(out + self.shortcut(x), inplace=True)


class AudioEncoder(nn.Module):
    """ResNetSE-34 on the (B, 1, 80, 16) Wav2Lip mel window -> L2-normalised (B, embed_dim).

    A separate module so that G_L can take a frozen copy of AVSyncNet's trained audio encoder.
    """

    def __init__(self, config: AVSyncNetConfig) -> None:
        super().__init__()
        widths = [config.audio_width * 2**i for i in range(4)]
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        stages: list[nn.Module] = []
        c_in = widths[0]
        for i, (width, n) in enumerate(zip(widths, config.audio_layers, strict=True)):
            blocks = [SEBasicBlock(c_in, width, 1 if i == 0 else 2, config.se_reduction)]
            blocks += [SEBasicBlock(width, width, 1, config.se_reduction) for _ in range(1, n)]
            stages.append(nn.Sequential(*blocks))
            c_in = width
        self.stages = nn.Sequential(*stages)
        column = widths[-1] * (N_MELS // 8)  # channels x frequency bins left after three stride-2 stages
        hidden = widths[-1] // 2
        self.attention = nn.Sequential(
            nn.Conv1d(column, hidden, 1), nn.ReLU(), nn.BatchNorm1d(hidden), nn.Conv1d(hidden, column, 1)
        )
        self.fc = nn.Linear(column, config.embed_dim)

    def forward(self, mel: Tensor) -> Tensor:
        if mel.ndim == 3:
            mel = mel.unsqueeze(1)
        if mel.ndim != 4 or mel.shape[1:] != (1, N_MELS, MEL_WINDOW):
            raise TfbenchError(f"mel windows must be (B, 1, 80, 16) or (B, 80, 16), got {tuple(mel.shape)}")
        x = self.stages(self.stem(mel / MAX_ABS_VALUE))  # (B, C, 10, 2)
        columns = x.flatten(1, 2)  # (B, C * 10, time)
        weights = torch.softmax(self.attention(columns), dim=-1)
        return F.normalize(self.fc((columns * weights).sum(dim=-1)), dim=-1)


# --------------------------------------------------------------------------- the sync network
class AVSyncNet(nn.Module):
    """The audio-visual sync expert: `forward(frames, mel)` gives the two unit-norm embeddings.

    frames: (B, 5, 3, H, W) or (B, 15, H, W) lower-half windows in [0, 1] at `config.visual_size`
    (`visual_input` makes them from 96 px face windows); mel: (B, 1, 80, 16) Wav2Lip mel windows.
    `label` is what the checkpoint it was loaded from calls itself (e.g. "synthetic-data demo weights"),
    "" for an ordinary training checkpoint; `load_avsyncnet` sets it, so scorers can record it.
    """

    def __init__(self, config: AVSyncNetConfig) -> None:
        super().__init__()
        self.config = config
        self.label = ""
        self.visual_encoder = VisualEncoder(config)
        self.audio_encoder = AudioEncoder(config)

    def embed_video(self, frames: Tensor) -> Tensor:
        if tuple(frames.shape[-2:]) != tuple(self.config.visual_size):
            raise TfbenchError(
                f"AVSyncNet takes {self.config.visual_size[0]}x{self.config.visual_size[1]} lower halves, "
                f"got {frames.shape[-2]}x{frames.shape[-1]}; build the input with visual_input(faces, size)"
            )
        return self.visual_encoder(frames)

    def embed_audio(self, mel: Tensor) -> Tensor:
        return self.audio_encoder(mel)

    def forward(self, frames: Tensor, mel: Tensor) -> tuple[Tensor, Tensor]:
        return self.embed_video(frames), self.embed_audio(mel)

    def similarity(self, frames: Tensor, mel: Tensor) -> Tensor:
        """(B,) cosine similarity of each window with its mel window, in [-1, 1]."""
        return cosine_similarity(*self(frames, mel))

    def sync_probability(self, similarity: Tensor) -> Tensor:
        """`sync_probability` at this network's configured logit scale."""
        return sync_probability(similarity, self.config.logit_scale)

    def loss(self, similarity: Tensor, label: Tensor) -> Tensor:
        """`bce_sync_loss` at this network's configured logit scale: AVSyncNet's training loss."""
        return bce_sync_loss(similarity, label, self.config.logit_scale)


# --------------------------------------------------------------------------- training pairs
@dataclass(frozen=True)
class SyncPair:
    """One training pair by frame index: the video window starts at `video_start`, the mel window is that
    of the window starting at `audio_start` (its first mel step is int(80 * audio_start / fps)); label 1 when
    they are the same window, 0 for a negative at least `min_offset` frames away."""

    video_start: int
    audio_start: int
    label: int


def sample_sync_pairs(
    n_frames: int,
    n_pairs: int,
    rng: np.random.Generator,
    positive_fraction: float = 0.5,
    window: int = WINDOW_FRAMES,
    min_offset: int = WINDOW_FRAMES,
) -> list[SyncPair]:
    """Pairs of windows of one clip of `n_frames` frames: positives aligned, negatives non-overlapping.

    Every window lies inside the clip (start <= n_frames - window). The first round(n_pairs *
    positive_fraction) pairs are positives, the rest negatives; each negative's audio window starts at least
    `min_offset` (>= window, so the two never overlap) frames from its video window, chosen uniformly among
    the starts that qualify. Deterministic for a given `rng` state.
    """
    if min_offset < window:
        raise TfbenchError(
            f"min_offset ({min_offset}) must be >= window ({window}) so negatives never overlap"
        )
    if not 0.0 <= positive_fraction <= 1.0 or n_pairs < 0:
        raise TfbenchError(
            f"need n_pairs >= 0 and 0 <= positive_fraction <= 1, got {n_pairs}, {positive_fraction}"
        )
    n_starts = n_frames - window + 1
    n_pos = round(n_pairs * positive_fraction)
    need = window if n_pos == n_pairs else min_offset + window
    if n_frames < need:
        raise TfbenchError(
            f"a clip of {n_frames} frames is too short: sync pairs need at least {need} frames"
        )
    starts = np.arange(n_starts)
    pairs = []
    for i in range(n_pairs):
        video = int(rng.integers(n_starts))
        if i < n_pos:
            pairs.append(SyncPair(video, video, 1))
            continue
        candidates = starts[np.abs(starts - video) >= min_offset]
        while candidates.size == 0:  # a middle window of a short clip has no partner: draw another window
            video = int(rng.integers(n_starts))
            candidates = starts[np.abs(starts - video) >= min_offset]
        pairs.append(SyncPair(video, int(rng.choice(candidates)), 0))
    return pairs
