"""The paper's generators: G_L (lip-sync) and G_S (silent-lip), one U-Net architecture with two encoders.

Known from the paper (DESIGN.md section 5): G_L takes the closed-lip identity reference, the pose reference
(the target frame with its lower half masked) and a 16x80 mel window; separate identity and pose encoders
(CNNs with residual blocks); a decoder of face-decoding blocks (transposed convolutions with skips from both
encoders); the audio encoder is AVSyncNet's pretrained one, frozen; 96x96 output. G_S is the same
architecture, fed silent audio to close the lips of the identity reference. Choices where it is silent:

- Time is folded into the batch: (B, T, 3, S, S) frames and (B, T, 1, 80, 16) mel windows (frame t's own
  16-step window, as in Wav2Lip) become B*T items in index order b * T + t (`Tensor.reshape`), and the output
  is unfolded the same way; single frames (N, 3, S, S) with (N, 1, 80, 16) mels work as they are.
- The audio embedding (the encoder's unit-norm output times sqrt(D), so that its entries have unit scale
  like the image features) passes a trainable linear layer + ReLU to `audio_channels` and is tiled over
  the bottleneck (3x3 for 96 px), where it is concatenated with both encoders' deepest features (Wav2Lip
  injects audio at its bottleneck in the same way).
- The frozen audio encoder is a private deep copy of AVSyncNet's (`audio_encoder="avsyncnet_frozen"`):
  requires_grad False, kept in eval mode by `train()`, run under no_grad; a copy, so that training or
  switching the mode of the expert itself can never change the generator's audio features, and so that a
  generator checkpoint is complete. `audio_encoder="joint"` (the ablation "trained jointly") gives a fresh,
  trainable ResNetSE-34 instead.
- The pose input is masked inside `forward` (lower half set to 0, Wav2Lip's masking), so a caller may pass
  the unmasked target and the ground-truth mouth can never leak in; masking twice changes nothing.
- Output head: 3x3 conv + ReLU, 1x1 conv to RGB, sigmoid, as Wav2Lip's output block.
- Convolutions start from He (Kaiming) normal weights, as torchvision's ResNets do: torch's default init
  shrinks the signal by about 0.6 per layer, which across the ~20 layers from the bottleneck to the output
  left the audio almost no effect on the first steps' output.
- `silent_mel` is the mel of digital silence in Wav2Lip's normalisation: every bin at -4 (the floor of
  min_level_db -100 dB), which `tfbench.audio.wav2lip_mel` also gives for an all-zero waveform.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from tfbench.audio import MAX_ABS_VALUE, MEL_WINDOW, N_MELS
from tfbench.errors import TfbenchError
from tfbench.models.avsyncnet import AudioEncoder, AVSyncNet
from tfbench.models.blocks import FaceDecodingBlock, FaceEncoder, ResBlock, conv_bn_relu, stage_widths
from tfbench.models.config import GeneratorConfig, ModelConfig

__all__ = [
    "Generator",
    "build_generator",
    "mask_lower_half",
    "silent_mel",
]


def silent_mel(
    batch_shape: Sequence[int] = (1,),
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Mel windows of silence, (*batch_shape, 1, 80, 16), every value -4 (Wav2Lip's normalised floor)."""
    return torch.full((*batch_shape, 1, N_MELS, MEL_WINDOW), -MAX_ABS_VALUE, device=device, dtype=dtype)


def mask_lower_half(frames: Tensor) -> Tensor:
    """A copy of (..., 3, S, S) frames with rows S//2 onwards set to 0, Wav2Lip's pose-input masking."""
    masked = frames.clone()
    masked[..., frames.shape[-2] // 2 :, :] = 0.0
    return masked


class Generator(nn.Module):
    """G_L / G_S: identity + pose encoders, an audio encoder, face-decoding blocks; 96x96 RGB out in [0, 1].

    forward(identity, pose, mel): identity and pose (B, T, 3, S, S) or (N, 3, S, S) in [0, 1]; mel
    (B, T, 1, 80, 16) or (N, 1, 80, 16) Wav2Lip mel windows. Returns frames of the shape of `pose`.
    `label`: the loaded checkpoint's label ("" unless it has one; see `AVSyncNet`), set by `load_generators`.
    """

    def __init__(
        self, config: GeneratorConfig, audio_encoder: AudioEncoder, freeze_audio: bool = True
    ) -> None:
        super().__init__()
        self.config = config
        self.label = ""
        self.freeze_audio = freeze_audio
        widths = stage_widths(config)
        n_blocks = config.blocks_per_stage
        self.identity_encoder = FaceEncoder(config)
        self.pose_encoder = FaceEncoder(config)
        self.audio_encoder = audio_encoder
        if freeze_audio:
            self.audio_encoder.requires_grad_(False)
            self.audio_encoder.eval()
        self.audio_projection = nn.Sequential(
            nn.Linear(audio_encoder.fc.out_features, config.audio_channels), nn.ReLU(inplace=True)
        )
        self.bottleneck = nn.Sequential(
            conv_bn_relu(2 * widths[-1] + config.audio_channels, widths[-1]),
            *(ResBlock(widths[-1]) for _ in range(n_blocks)),
        )
        self.decoder = nn.ModuleList(
            FaceDecodingBlock(widths[i], widths[i - 1], n_skips=2, n_blocks=n_blocks)
            for i in range(config.n_scales, 0, -1)
        )
        self.head = nn.Sequential(
            nn.Conv2d(widths[0], widths[0], 3, 1, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(widths[0], 3, 1),
            nn.Sigmoid(),
        )
        for name, m in self.named_modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d) and not name.startswith("audio_encoder."):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")  # see the module docstring

    def train(self, mode: bool = True) -> Generator:
        """Set the training mode; a frozen audio encoder stays in eval mode (BatchNorm statistics fixed)."""
        super().train(mode)
        if self.freeze_audio:
            self.audio_encoder.eval()
        return self

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters an optimiser should update (all but a frozen audio encoder's)."""
        return (p for p in self.parameters() if p.requires_grad)

    def _embed_audio(self, mel: Tensor) -> Tensor:
        if not self.freeze_audio:
            return self.audio_encoder(mel)
        with torch.no_grad():
            return self.audio_encoder(mel).detach()

    def forward(self, identity: Tensor, pose: Tensor, mel: Tensor) -> Tensor:
        size = self.config.face_size
        if pose.shape[-3:] != (3, size, size) or identity.shape != pose.shape or pose.ndim not in (4, 5):
            raise TfbenchError(
                f"G takes identity and pose frames of one shape, (B, T, 3, {size}, {size}) or "
                f"(N, 3, {size}, {size}), got {tuple(identity.shape)} and {tuple(pose.shape)}"
            )
        lead = pose.shape[:-3]
        if mel.shape[: len(lead)] != lead or mel.shape[len(lead) :] != (1, N_MELS, MEL_WINDOW):
            raise TfbenchError(
                f"mel must be {(*lead, 1, N_MELS, MEL_WINDOW)} for these frames, got {tuple(mel.shape)}"
            )
        identity_features = self.identity_encoder(identity.reshape(-1, 3, size, size))
        pose_features = self.pose_encoder(mask_lower_half(pose).reshape(-1, 3, size, size))
        embedding = self._embed_audio(mel.reshape(-1, 1, N_MELS, MEL_WINDOW))
        audio = self.audio_projection(embedding * embedding.shape[-1] ** 0.5)
        deepest = identity_features[-1]
        audio_map = audio[:, :, None, None].expand(-1, -1, *deepest.shape[-2:])
        x = self.bottleneck(torch.cat([deepest, pose_features[-1], audio_map], dim=1))
        for i, block in enumerate(self.decoder):
            scale = self.config.n_scales - 1 - i
            x = block(x, (identity_features[scale], pose_features[scale]))
        return self.head(x).reshape(pose.shape)

    def close_lips(self, reference: Tensor) -> Tensor:
        """G_S's use: the identity reference re-rendered with silent audio, in its own pose (closed lips)."""
        mel = silent_mel(reference.shape[:-3], device=reference.device, dtype=reference.dtype)
        return self(reference, reference, mel)


def _audio_encoder(config: ModelConfig, avsyncnet: AVSyncNet | None) -> tuple[AudioEncoder, bool]:
    """The audio encoder the ablation switch asks for, and whether it is frozen."""
    if config.ablation.audio_encoder == "joint":
        return AudioEncoder(config.avsyncnet), False
    if avsyncnet is None:
        raise TfbenchError(
            "audio_encoder 'avsyncnet_frozen' needs the trained AVSyncNet (train it first, then pass it in); "
            "set ablation.audio_encoder to 'joint' to train a fresh audio encoder with the generator"
        )
    return copy.deepcopy(avsyncnet.audio_encoder), True


def build_generator(config: ModelConfig, avsyncnet: AVSyncNet | None) -> Generator:
    """G_L or G_S for `config` (one architecture): a frozen copy of `avsyncnet`'s audio encoder, or a fresh
    trainable one when `ablation.audio_encoder` is "joint". G_S is trained and used with `silent_mel()`."""
    encoder, frozen = _audio_encoder(config, avsyncnet)
    return Generator(config.generator, encoder, freeze_audio=frozen)
