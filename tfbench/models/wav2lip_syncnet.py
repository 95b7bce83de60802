"""Wav2Lip's expert lip-sync discriminator (`SyncNet_color`), the network behind the `sync_w2l` score.

tfbench's own implementation of the published architecture; its `state_dict` has the keys and shapes of
the released `lipsync_expert.pth` (a checkpoint dict holding `state_dict`, as the generator's files), so that
file loads unchanged through `load_wav2lip_syncnet`. It is built from the generator's `ConvBlock`s at the
Sequential indices of the published model (which has no Dropout layers), so the parameter names match.

Inputs, as the reference was trained (color_syncnet_train.py):
- faces: (B, 15, 48, 96) float in [0, 1]: the lower half (rows 48:) of five consecutive 96x96 BGR crops,
  stacked frame by frame along the channels (channel = 3 * frame + colour). `expert_face_input` builds it
  from tfbench's uint8 RGB crops;
- audio: (B, 1, 80, 16) Wav2Lip mel windows (`tfbench.audio.mel_windows`), the window of the first frame.
Each gives a 512-d embedding, L2-normalised; their cosine similarity (in [0, 1], both embeddings come out of
a ReLU) is what Wav2Lip trains with BCE as the probability that the pair is in sync: `sync_probability`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tfbench.errors import TfbenchError
from tfbench.models.wav2lip import AUDIO_INPUT_SHAPE, FACE_SIZE, ConvBlock, audio_encoder, load_into

__all__ = [
    "EMBEDDING_DIM",
    "FACE_INPUT_SHAPE",
    "WINDOW_FRAMES",
    "SyncNet_color",
    "Wav2LipSyncNet",
    "expert_face_input",
    "load_wav2lip_syncnet",
    "sync_probability",
]

EMBEDDING_DIM = 512
WINDOW_FRAMES = 5
"""Frames per face window: 0.2 s at 25 fps, the span of one 16-step mel window."""
FACE_INPUT_SHAPE = (3 * WINDOW_FRAMES, FACE_SIZE // 2, FACE_SIZE)
"""One face window: 5 BGR frames as 15 channels, the lower half (48 rows) of a 96x96 crop."""


def _residuals(channels: int, n: int) -> list[nn.Module]:
    return [ConvBlock(channels, channels, 3, 1, 1, residual=True) for _ in range(n)]


class Wav2LipSyncNet(nn.Module):
    """Wav2Lip's expert SyncNet: a face tower and an audio tower giving L2-normalised 512-d embeddings.

    Face tower (`face_encoder`, 17 ConvBlocks): 7x7 at 48x96, a 5x5 stride (1, 2) to 46x47, then stride-2
    stages at 128, 256, 512, 512 channels down to 3x3, a 3x3 valid and a 1x1 convolution to 512x1x1.
    Audio tower (`audio_encoder`, 14 ConvBlocks): the generator's mel encoder with one more residual block.

    Example:
        >>> net = Wav2LipSyncNet().eval()
        >>> audio, video = net(torch.zeros(2, 1, 80, 16), torch.zeros(2, 15, 48, 96))
        >>> audio.shape, video.shape
        (torch.Size([2, 512]), torch.Size([2, 512]))
    """

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder = nn.Sequential(
            ConvBlock(3 * WINDOW_FRAMES, 32, 7, 1, 3),
            ConvBlock(32, 64, 5, (1, 2), 1),
            *_residuals(64, 2),
            ConvBlock(64, 128, 3, 2, 1),
            *_residuals(128, 3),
            ConvBlock(128, 256, 3, 2, 1),
            *_residuals(256, 2),
            ConvBlock(256, 512, 3, 2, 1),
            *_residuals(512, 2),
            ConvBlock(512, 512, 3, 2, 1),
            ConvBlock(512, 512, 3, 1, 0),
            ConvBlock(512, EMBEDDING_DIM, 1, 1, 0),
        )
        self.audio_encoder = audio_encoder(residual_at_256=2)

    def forward_audio(self, mel: Tensor) -> Tensor:
        """(B, 1, 80, 16) mel windows -> (B, 512) unit-length embeddings."""
        if mel.ndim != 4 or tuple(mel.shape[1:]) != AUDIO_INPUT_SHAPE:
            raise TfbenchError(f"expert SyncNet audio must be (B, 1, 80, 16), got {tuple(mel.shape)}")
        return F.normalize(self.audio_encoder(mel).flatten(1), p=2, dim=1)

    def forward_video(self, faces: Tensor) -> Tensor:
        """(B, 15, 48, 96) lower-half BGR windows in [0, 1] -> (B, 512) unit-length embeddings."""
        if faces.ndim != 4 or tuple(faces.shape[1:]) != FACE_INPUT_SHAPE:
            raise TfbenchError(f"expert SyncNet faces must be (B, 15, 48, 96), got {tuple(faces.shape)}")
        return F.normalize(self.face_encoder(faces).flatten(1), p=2, dim=1)

    def forward(self, mel: Tensor, faces: Tensor) -> tuple[Tensor, Tensor]:
        """Both embeddings, (audio (B, 512), video (B, 512)), in the reference's argument and output order."""
        return self.forward_audio(mel), self.forward_video(faces)

    def sync_probability(self, mel: Tensor, faces: Tensor) -> Tensor:
        """(B,) probability that each face window is in sync with its mel window."""
        return sync_probability(*self(mel, faces))


SyncNet_color = Wav2LipSyncNet
"""The reference's name for the network."""


def sync_probability(audio_embedding: Tensor, video_embedding: Tensor) -> Tensor:
    """Cosine similarity of the two embeddings along the last axis: Wav2Lip's sync probability.

    The embeddings are already unit length, so this is their dot product; `F.cosine_similarity` is what the
    reference feeds to its BCE loss, kept here so that both agree to the last bit.
    """
    return F.cosine_similarity(audio_embedding, video_embedding, dim=-1)


def expert_face_input(windows: Tensor) -> Tensor:
    """(B, 5, 96, 96, 3) RGB crops (uint8, or float in [0, 1]) -> (B, 15, 48, 96) expert input.

    Flips to BGR (the reference decodes with OpenCV), scales to [0, 1], keeps rows 48: of each frame and
    stacks the frames along the channels (channel = 3 * frame + colour), as the reference's training does.
    Crops of another size must be resized to 96x96 first (the reference uses cv2.resize, bilinear).
    """
    if windows.ndim != 5 or tuple(windows.shape[1:]) != (WINDOW_FRAMES, FACE_SIZE, FACE_SIZE, 3):
        raise TfbenchError(f"expert SyncNet windows must be (B, 5, 96, 96, 3), got {tuple(windows.shape)}")
    x = windows[:, :, FACE_SIZE // 2 :].flip(-1).permute(0, 1, 4, 2, 3)  # (B, 5, 3, 48, 96) BGR
    x = x.to(torch.float32) / 255.0 if windows.dtype == torch.uint8 else x.to(torch.float32)
    return x.reshape(x.shape[0], *FACE_INPUT_SHAPE)


def load_wav2lip_syncnet(path: str | Path, device: str | torch.device = "cpu") -> Wav2LipSyncNet:
    """Load `lipsync_expert.pth` (or a checkpoint of its architecture) into a `Wav2LipSyncNet`, eval mode.

    Read with `weights_only=True` (see `tfbench.models.wav2lip.read_checkpoint`); `module.` prefixes removed.

    Raises:
        TfbenchError: the file is missing, unreadable, or its keys or shapes differ from the network
            (the message names the file and the first mismatching key).
    """
    return load_into(Wav2LipSyncNet, path, "Wav2Lip expert SyncNet", device)
