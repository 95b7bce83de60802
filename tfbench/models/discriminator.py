"""The visual-quality discriminator for the GAN loss: an SN-PatchGAN on the lower half of the face.

The paper trains with an L_GAN term but its discriminator is not recovered. tfbench's choices:
- PatchGAN (Isola et al. 2017, pix2pix's n_layers=3 "70x70" layout): 4x4 convolutions, stride 2 for the
  first `n_layers` (widths w, 2w, 4w, capped at 8w), then two stride-1 layers; it outputs a map of logits,
  one per overlapping patch, so it judges local texture (teeth, lip edges) rather than global layout.
- Spectral normalisation on every convolution (Miyato et al. 2018) instead of BatchNorm: real and generated
  batches pass through it separately, and BatchNorm statistics would then differ between the two.
- Region `lower_half` by default, as Wav2Lip's visual-quality discriminator: the mouth region is what the
  generator synthesises from audio, the upper half comes from the pose reference. `full` judges the whole
  face (seams at the mask border included). Input frames in [0, 1], mapped to [-1, 1].
- Time is folded into the batch as in the generator: (B, T, 3, S, S) gives (B*T, 1, h, w) logits.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from tfbench.errors import TfbenchError
from tfbench.models.config import DiscriminatorConfig

__all__ = ["PatchDiscriminator"]


class PatchDiscriminator(nn.Module):
    """(N, 3, S, S) or (B, T, 3, S, S) faces in [0, 1] -> (N or B*T, 1, h, w) real/fake logits per patch."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        width = config.width
        layers: list[nn.Module] = []
        c_in = 3
        for i in range(config.n_layers):
            c_out = width * min(2**i, 8)
            layers += [spectral_norm(nn.Conv2d(c_in, c_out, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c_out
        c_out = width * min(2**config.n_layers, 8)
        layers += [spectral_norm(nn.Conv2d(c_in, c_out, 4, 1, 1)), nn.LeakyReLU(0.2, inplace=True)]
        layers.append(spectral_norm(nn.Conv2d(c_out, 1, 4, 1, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, faces: Tensor) -> Tensor:
        if faces.ndim not in (4, 5) or faces.shape[-3] != 3 or faces.shape[-1] != faces.shape[-2]:
            raise TfbenchError(
                f"the discriminator takes (N, 3, S, S) or (B, T, 3, S, S) faces, got {tuple(faces.shape)}"
            )
        x = faces.reshape(-1, *faces.shape[-3:])
        if self.config.region == "lower_half":
            x = x[..., x.shape[-2] // 2 :, :]
        return self.net(x * 2.0 - 1.0)
