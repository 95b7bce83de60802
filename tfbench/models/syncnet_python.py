"""syncnet_python's SyncNet `S`, the network behind the standard LSE-D / LSE-C scores (DESIGN.md section 4).

tfbench's own implementation of the published architecture: its `state_dict` has the keys and shapes of
the released `syncnet_v2.model` (a plain state_dict of four Sequentials `netcnnaud`, `netfcaud`,
`netcnnlip`, `netfclip`), so that file loads into it unchanged. The pooling and activation layers sit
at the same Sequential indices as in the reference, since the indices are part of the parameter names.

Inputs are those of the reference, unnormalised:
- audio: MFCC windows (B, 1, 13, 20), python_speech_features defaults, 20 steps = 0.2 s;
- video: five consecutive 224x224 face crops (B, 3, 5, 224, 224), BGR channel order, float 0-255.
Both give a (B, 1024) embedding; sync is judged by the L2 distance between the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from tfbench.errors import TfbenchError

__all__ = [
    "AUDIO_INPUT_SHAPE",
    "EMBEDDING_DIM",
    "VIDEO_INPUT_SHAPE",
    "S",
    "SyncNetS",
    "check_state_dict",
    "load_syncnet_v2",
]

EMBEDDING_DIM = 1024
AUDIO_INPUT_SHAPE = (1, 13, 20)
"""One audio window: 1 channel, 13 MFCC coefficients, 20 steps of 10 ms."""
VIDEO_INPUT_SHAPE = (3, 5, 224, 224)
"""One video window: BGR, 5 frames, 224x224 pixels."""

_Pair = tuple[int, int]
_Triple = tuple[int, int, int]


def _conv2d_block(
    c_in: int, c_out: int, kernel: _Pair, padding: _Pair, stride: _Pair = (1, 1)
) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, kernel_size=kernel, stride=stride, padding=padding),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


def _conv3d_block(
    c_in: int, c_out: int, kernel: _Triple, padding: _Triple, stride: _Triple = (1, 1, 1)
) -> list[nn.Module]:
    return [
        nn.Conv3d(c_in, c_out, kernel_size=kernel, stride=stride, padding=padding),
        nn.BatchNorm3d(c_out),
        nn.ReLU(inplace=True),
    ]


def _fc_head(out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, out_dim))


class SyncNetS(nn.Module):
    """syncnet_python's `S`: an audio tower and a lip tower mapping 0.2 s of each to a 1024-d embedding.

    Audio tower (`netcnnaud` + `netfcaud`): six 3x3 / 5x4 convolutions with BatchNorm on (1, 13, 20) MFCC,
    max-pools (1x1 identity, 3x3 stride (1, 2), 3x3 stride 2) -> 512 -> FC 512 -> 1024.
    Lip tower (`netcnnlip` + `netfclip`): a 5x7x7 spatio-temporal convolution over the five frames, then
    2-D (1xkxk) convolutions and pools down to 1x1x512 -> FC 512 -> 1024.

    Example:
        >>> net = SyncNetS().eval()
        >>> net.forward_audio(torch.zeros(2, 1, 13, 20)).shape
        torch.Size([2, 1024])
    """

    def __init__(self, embedding_dim: int = EMBEDDING_DIM) -> None:
        super().__init__()
        self.netcnnaud = nn.Sequential(
            *_conv2d_block(1, 64, (3, 3), (1, 1)),
            nn.MaxPool2d(kernel_size=(1, 1), stride=(1, 1)),  # an identity kept for the layer indices
            *_conv2d_block(64, 192, (3, 3), (1, 1)),
            nn.MaxPool2d(kernel_size=(3, 3), stride=(1, 2)),
            *_conv2d_block(192, 384, (3, 3), (1, 1)),
            *_conv2d_block(384, 256, (3, 3), (1, 1)),
            *_conv2d_block(256, 256, (3, 3), (1, 1)),
            nn.MaxPool2d(kernel_size=(3, 3), stride=(2, 2)),
            *_conv2d_block(256, 512, (5, 4), (0, 0)),
        )
        self.netfcaud = _fc_head(embedding_dim)
        self.netcnnlip = nn.Sequential(
            *_conv3d_block(3, 96, (5, 7, 7), (0, 0, 0), stride=(1, 2, 2)),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            *_conv3d_block(96, 256, (1, 5, 5), (0, 1, 1), stride=(1, 2, 2)),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            *_conv3d_block(256, 256, (1, 3, 3), (0, 1, 1)),
            *_conv3d_block(256, 256, (1, 3, 3), (0, 1, 1)),
            *_conv3d_block(256, 256, (1, 3, 3), (0, 1, 1)),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            *_conv3d_block(256, 512, (1, 6, 6), (0, 0, 0)),
        )
        self.netfclip = _fc_head(embedding_dim)

    def forward_audio(self, mfcc: Tensor) -> Tensor:
        """(B, 1, 13, 20) MFCC windows -> (B, embedding_dim)."""
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def forward_video(self, frames: Tensor) -> Tensor:
        """(B, 3, 5, 224, 224) BGR float 0-255 windows -> (B, embedding_dim)."""
        return self.netfclip(self.netcnnlip(frames).flatten(1))

    def forward(self, mfcc: Tensor, frames: Tensor) -> tuple[Tensor, Tensor]:
        """Both embeddings: (audio (B, D), video (B, D))."""
        return self.forward_audio(mfcc), self.forward_video(frames)


S = SyncNetS
"""The reference's name for the network."""


def check_state_dict(state: Mapping[str, object], model: nn.Module, source: str) -> None:
    """Raise a TfbenchError naming `source` and the first key that does not fit `model`.

    Every tensor of `state` must exist in `model` with the same shape, and every parameter and buffer of
    `model` must be present, except BatchNorm's `num_batches_tracked` counters (files saved by PyTorch
    before 0.4.1 have none, and eval-mode outputs do not depend on them).
    """
    expected = model.state_dict()
    for key, value in state.items():
        if key not in expected:
            raise TfbenchError(f"{source} is not a syncnet_v2 state_dict: unexpected key {key!r}")
        if not isinstance(value, Tensor):
            raise TfbenchError(f"{source} is not a syncnet_v2 state_dict: {key!r} is not a tensor")
        if tuple(value.shape) != tuple(expected[key].shape):
            raise TfbenchError(
                f"{source} is not a syncnet_v2 state_dict: {key!r} has shape {tuple(value.shape)}, "
                f"expected {tuple(expected[key].shape)}"
            )
    for key in expected:
        if key not in state and not key.endswith("num_batches_tracked"):
            raise TfbenchError(f"{source} is not a syncnet_v2 state_dict: missing key {key!r}")


def load_syncnet_v2(path: str | Path, device: str | torch.device = "cpu") -> SyncNetS:
    """Load syncnet_python's `syncnet_v2.model` (a plain state_dict of `S`) into a `SyncNetS` in eval mode.

    The file is read with `weights_only=True` (no code from the file runs) straight onto `device`.

    Raises:
        TfbenchError: the file is missing, unreadable, not a state_dict, or its keys or shapes differ
            from `S` (the message names the file and the first mismatching key).
    """
    path = Path(path)
    if not path.is_file():
        raise TfbenchError(f"syncnet_v2 weights not found: {path}")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # pickle, zip and torch raise many unrelated types for a wrong file
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        raise TfbenchError(
            f"{path} is not a readable torch state_dict ({type(exc).__name__}: {reason})"
        ) from exc
    if not isinstance(state, Mapping):
        raise TfbenchError(f"{path} is not a syncnet_v2 state_dict: it holds a {type(state).__name__}")
    model = SyncNetS()
    check_state_dict(state, model, str(path))
    model.load_state_dict(dict(state), strict=False)  # strict=False only for num_batches_tracked
    return model.to(device).eval()
