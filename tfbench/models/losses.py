"""The paper's training losses, each a small function: L_ss, the plain sync loss, L_at, L1, VGG, GAN, total.

Known from the paper (DESIGN.md section 5): the stabilized sync loss L_ss (exact formula below), an adaptive
triplet loss L_at (anchor generated, positive GT, negative identity reference, margin adapted to the
GT-reference similarity), and the total L = L_GAN + 10 L_pix + L_per + 2 L_ss + 0.5 L_at. Where it is silent:

- L_ss is clamped so that it is finite for every finite input (see its docstring); the plain sync loss is
  -log(p) with p clamped to [1e-7, 1] (Wav2Lip's BCE against 1 floors the log at -100 instead).
- L_at's margin form and embedding space are named config options (`LossConfig.triplet_margin_form`,
  `triplet_space`), default margin = base_margin * (1 - cos(GT, reference)) in cosine distance of the
  AVSyncNet visual embedding; see `adaptive_triplet_loss`.
- L_pix is the mean absolute error over all pixels (Wav2Lip's L1 reconstruction loss).
- L_per follows pix2pixHD's VGG loss: L1 between VGG19 features at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
  with weights 1/32, 1/16, 1/8, 1/4, 1, on ImageNet-normalised RGB; ImageNet weights come through the weights
  registry (entry `vgg19`, torchvision's `vgg19-dcbb9e9d.pth`), random ones in tests.
- L_GAN: "bce" is the non-saturating GAN on logits (BCE-with-logits, numerically stable), "hinge" the hinge
  GAN; the discriminator's loss is the sum of its real and fake terms, as in Wav2Lip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.vgg import cfgs, make_layers

from tfbench.errors import TfbenchError
from tfbench.models.avsyncnet import AVSyncNet, visual_input
from tfbench.models.config import LossWeights
from tfbench.weights import resolve

__all__ = [
    "LOSS_TERMS",
    "VGG19_LAYERS",
    "VGG19_WEIGHTS",
    "PerceptualLoss",
    "adaptive_triplet_loss",
    "gan_discriminator_loss",
    "gan_generator_loss",
    "pixel_loss",
    "plain_sync_loss",
    "stabilized_sync_loss",
    "total_loss",
    "triplet_embedding",
]

LOSS_TERMS = ("gan", "pix", "per", "sync", "triplet")
"""The names `total_loss` accepts, one per field of `LossWeights`."""

_SS_MAX_RATIO = 1.0 - 1e-6
"""The ceiling of L_ss's inner ratio: L_ss <= -log(1e-6) ~ 13.8."""
_SS_INPUT_LIMIT = 1e30
"""Similarities are clamped to +-1e30 (cosines lie in [-1, 1]) so that no difference overflows."""


# --------------------------------------------------------------------------- sync losses
def stabilized_sync_loss(x: Tensor, y: Tensor, d: Tensor, eps: float = 1e-6) -> Tensor:
    """L_ss = -log(1 - (|x - y| + eps) / (|x - y| + |y - d| + eps)), the mean over the batch.

    x = sim(generated, audio), y = sim(GT, audio), d = sim(reference, audio), broadcastable tensors. The ratio
    measures how far the generated frame's sync score is from the GT's, relative to how far the reference's
    is: the loss pulls x toward y (dL/d|x - y| > 0) with a strength set by the GT-reference gap, not by the
    raw score of an unstable expert.

    Extremes: x == y gives ratio eps / (|y - d| + eps), so L_ss ~ eps / |y - d| ~ 0 (exactly 0 up to eps);
    |x - y| >> |y - d| drives the ratio to 1, where -log would be +inf: the ratio is clamped at 1 - 1e-6, so
    L_ss saturates at about 13.8 with zero gradient (no usable signal when GT and reference score alike);
    x == y == d gives ratio eps / eps = 1, the same saturated, finite value. The ratio is computed in float64
    (inputs clamped to +-1e30) so every finite input gives a finite loss; NaN inputs stay NaN (not hidden).
    """
    if not eps > 0:
        raise TfbenchError(f"stabilized_sync_loss needs eps > 0 (x == y == d would divide 0 by 0), got {eps}")
    x64, y64, d64 = (t.double().clamp(-_SS_INPUT_LIMIT, _SS_INPUT_LIMIT) for t in (x, y, d))
    gap = (x64 - y64).abs()
    ratio = (gap + eps) / (gap + (y64 - d64).abs() + eps)
    loss = -torch.log1p(-ratio.clamp(max=_SS_MAX_RATIO))
    return loss.mean().to(x.dtype)


def plain_sync_loss(cos: Tensor, eps: float = 1e-7) -> Tensor:
    """Wav2Lip's sync loss, BCE of the expert's sync probability against 1: mean of -log(cos).

    `cos` is the expert's probability in [0, 1] (Wav2Lip's expert: the cosine of ReLU'd embeddings; AVSyncNet:
    `sync_probability(similarity)`). It is clamped to [eps, 1], so the loss lies in [0, -log(eps)] (16.1).
    """
    return -torch.log(cos.clamp(min=eps, max=1.0)).mean()


# --------------------------------------------------------------------------- adaptive triplet loss
def adaptive_triplet_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    base_margin: float = 0.2,
    margin_form: Literal["gt_ref_distance", "constant"] = "gt_ref_distance",
) -> Tensor:
    """L_at = mean(relu(dist(a, p) - dist(a, n) + margin)) in cosine distance, dist = 1 - cos (in [0, 2]).

    anchor = generated, positive = GT, negative = identity reference, (B, ...) each, flattened per item.
    The paper adapts the margin to the GT-reference similarity; its exact form is not recovered, so it is a
    named option. "gt_ref_distance": margin = base_margin * dist(GT, reference), i.e. base_margin *
    (1 - cos(GT, ref)) (detached): when the GT mouth looks like the reference's (a closed mouth in both),
    the generated frame is not pushed away from the reference, and the push grows as the GT departs from it.
    "constant": the standard triplet margin.
    """
    a, p, n = (t.flatten(1) for t in (anchor, positive, negative))
    d_ap = 1.0 - F.cosine_similarity(a, p, dim=1)
    d_an = 1.0 - F.cosine_similarity(a, n, dim=1)
    if margin_form == "gt_ref_distance":
        margin = base_margin * (1.0 - F.cosine_similarity(p, n, dim=1)).detach()
    elif margin_form == "constant":
        margin = torch.full_like(d_ap, base_margin)
    else:
        raise TfbenchError(
            f"unknown triplet margin form {margin_form!r}; use 'gt_ref_distance' or 'constant'"
        )
    return F.relu(d_ap - d_an + margin).mean()


def triplet_embedding(
    windows: Tensor, space: Literal["avsyncnet_visual", "pixel"], avsyncnet: AVSyncNet | None = None
) -> Tensor:
    """The (B, D) embedding of (B, 5, 3, S, S) face windows in which L_at is measured.

    "avsyncnet_visual": AVSyncNet's visual embedding of the windows' lower halves (the expert's mouth-shape
    space; keep the expert frozen, gradients still reach the generated frames); "pixel": the lower-half
    pixels, flattened.
    """
    if space == "pixel":
        return windows[..., windows.shape[-2] // 2 :, :].flatten(1)
    if space == "avsyncnet_visual":
        if avsyncnet is None:
            raise TfbenchError("triplet space 'avsyncnet_visual' needs the AVSyncNet")
        return avsyncnet.embed_video(visual_input(windows, avsyncnet.config.visual_size))
    raise TfbenchError(f"unknown triplet space {space!r}; use 'avsyncnet_visual' or 'pixel'")


# --------------------------------------------------------------------------- reconstruction losses
def pixel_loss(generated: Tensor, target: Tensor) -> Tensor:
    """L_pix: mean absolute difference over every pixel, channel and frame."""
    return F.l1_loss(generated, target)


VGG19_WEIGHTS = "vgg19"
"""Weights registry entry of torchvision's ImageNet VGG19 (`vgg19-dcbb9e9d.pth`)."""
VGG19_LAYERS = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu5_1": 29}
"""Index of each ReLU output in torchvision's `vgg19().features`."""
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class PerceptualLoss(nn.Module):
    """L_per: weighted L1 distance of frozen VGG19 features of generated and target frames in [0, 1].

    Frames (..., 3, H, W), folded into one batch. pretrained=True loads ImageNet weights through
    `tfbench.weights.resolve("vgg19", overrides)`; pretrained=False keeps a random VGG19 (tests, demo).
    Only the layers up to the deepest requested one are built.
    """

    mean: Tensor
    std: Tensor

    def __init__(
        self,
        pretrained: bool = True,
        layers: Sequence[str] = tuple(VGG19_LAYERS),
        layer_weights: Sequence[float] = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0),
        overrides: dict[str, Path] | None = None,
    ) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG19_LAYERS]
        if unknown or len(set(layers)) != len(layers) or len(layers) != len(layer_weights) or not layers:
            raise TfbenchError(
                f"perceptual layers must be distinct names from {list(VGG19_LAYERS)} with one weight each, "
                f"got {list(layers)} and {list(layer_weights)}"
            )
        features = make_layers(cfgs["E"])
        if pretrained:
            path = resolve(VGG19_WEIGHTS, overrides)
            state = torch.load(path, map_location="cpu", weights_only=True)
            prefix = "features."
            try:
                features.load_state_dict(
                    {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
                )
            except RuntimeError as exc:
                raise TfbenchError(f"{path} is not a torchvision VGG19 state_dict: {exc}") from None
        self.taps = [VGG19_LAYERS[name] for name in layers]
        self.layer_weights = tuple(float(w) for w in layer_weights)
        self.features = features[: max(self.taps) + 1]
        self.features.requires_grad_(False)
        self.features.eval()
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        """The VGG stays in eval mode: it is a fixed feature extractor."""
        super().train(mode)
        self.features.eval()
        return self

    def _features(self, frames: Tensor) -> list[Tensor]:
        x = (frames.reshape(-1, *frames.shape[-3:]) - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out

    def forward(self, generated: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            target_features = self._features(target)
        generated_features = self._features(generated)
        weights = dict(zip(self.taps, self.layer_weights, strict=True))
        terms = [
            weights[tap] * F.l1_loss(g, t)
            for tap, g, t in zip(sorted(self.taps), generated_features, target_features, strict=True)
        ]
        return torch.stack(terms).sum()


# --------------------------------------------------------------------------- GAN losses
def gan_generator_loss(fake_logits: Tensor, kind: Literal["bce", "hinge"] = "bce") -> Tensor:
    """The generator's adversarial loss on the discriminator's logits for generated frames."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if kind == "hinge":
        return -fake_logits.mean()
    raise TfbenchError(f"unknown GAN loss {kind!r}; use 'bce' or 'hinge'")


def gan_discriminator_loss(
    real_logits: Tensor, fake_logits: Tensor, kind: Literal["bce", "hinge"] = "bce"
) -> Tensor:
    """The discriminator's loss: its real term plus its fake term (pass detached generated frames)."""
    if kind == "bce":
        real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        return real + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    raise TfbenchError(f"unknown GAN loss {kind!r}; use 'bce' or 'hinge'")


# --------------------------------------------------------------------------- total
def total_loss(parts: Mapping[str, Tensor], weights: LossWeights) -> Tensor:
    """Sum of weights.<name> * parts[name] over the given parts (an ablation leaves out the terms it drops).

    Names are those of `LOSS_TERMS`; an unknown name is an error (a misspelt term would silently vanish).
    """
    if unknown := sorted(set(parts) - set(LOSS_TERMS)):
        raise TfbenchError(f"unknown loss terms {unknown}; known: {list(LOSS_TERMS)}")
    if not parts:
        raise TfbenchError("total_loss needs at least one loss term")
    return torch.stack([getattr(weights, name) * value for name, value in parts.items()]).sum()
