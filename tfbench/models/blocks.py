"""Building blocks of the generators G_L and G_S: residual blocks, the face encoders, face-decoding blocks.

Choices where the paper is silent (it names "CNNs with residual blocks" and "face-decoding blocks of
transposed convolutions with skips from both encoders"): convolutions are followed by BatchNorm and ReLU as
in Wav2Lip's generator; a residual block is two 3x3 conv-BN layers around an identity shortcut (He et al.
2016); downsampling is a stride-2 3x3 convolution and upsampling a stride-2 4x4 transposed convolution
(exact doubling, no output_padding).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from tfbench.models.config import GeneratorConfig

__all__ = ["FaceDecodingBlock", "FaceEncoder", "ResBlock", "conv_bn_relu", "stage_widths"]


def stage_widths(config: GeneratorConfig) -> list[int]:
    """Channel widths at scales 0..n_scales (face_size / 2**i): base_width doubling, capped at max_width."""
    return [min(config.base_width * 2**i, config.max_width) for i in range(config.n_scales + 1)]


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv (same padding), BatchNorm, ReLU: the unit every encoder and decoder layer is made of."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ResBlock(nn.Module):
    """Two 3x3 conv-BN layers around an identity shortcut, ReLU after the sum (shape-preserving)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x + self.body(x))


def _res_blocks(channels: int, n: int) -> list[nn.Module]:
    return [ResBlock(channels) for _ in range(n)]


class FaceEncoder(nn.Module):
    """A CNN with residual blocks giving features at every scale: the identity or the pose encoder of G_L.

    (N, 3, S, S) in [0, 1] -> [f_0, ..., f_n], f_i of shape (N, widths[i], S / 2**i, S / 2**i). Scale 0 is a
    7x7 stem (Wav2Lip's first layer), each further scale a stride-2 convolution; every scale ends in
    `blocks_per_stage` residual blocks. The list feeds the decoder's skips (U-Net style); its last entry is
    the bottleneck.
    """

    def __init__(self, config: GeneratorConfig, in_channels: int = 3) -> None:
        super().__init__()
        widths = stage_widths(config)
        n = config.blocks_per_stage
        stages = [nn.Sequential(conv_bn_relu(in_channels, widths[0], kernel=7), *_res_blocks(widths[0], n))]
        for c_in, c_out in itertools.pairwise(widths):
            stages.append(nn.Sequential(conv_bn_relu(c_in, c_out, stride=2), *_res_blocks(c_out, n)))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        x = x * 2.0 - 1.0
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class FaceDecodingBlock(nn.Module):
    """One FD block: transposed-conv upsampling x2, concatenation of the skips, a conv and residual blocks.

    forward(x, skips): x (N, c_in, h, w), skips the same-scale features of both encoders, each
    (N, c_out, 2h, 2w) -> (N, c_out, 2h, 2w).
    """

    def __init__(self, c_in: int, c_out: int, n_skips: int, n_blocks: int) -> None:
        super().__init__()
        self.up = nn.Sequential(
            nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )
        self.fuse = nn.Sequential(conv_bn_relu(c_out * (1 + n_skips), c_out), *_res_blocks(c_out, n_blocks))

    def forward(self, x: Tensor, skips: Sequence[Tensor]) -> Tensor:
        return self.fuse(torch.cat([self.up(x), *skips], dim=1))
