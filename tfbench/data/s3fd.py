"""S3FD, the face detector behind the published LSE numbers (syncnet_python) and Wav2Lip's crops.

Two published weight files exist and this module loads both unchanged:
- `sfd_face.pth` (syncnet_python, weights entry `s3fd`): keys `vgg.N`, `L2Norm3_3`, `extras.N`, `loc.N`,
  `conf.N`; its network has a ceil-mode third pooling and a dilated fc6 (padding 6, dilation 6).
- `s3fd-619a316812.pth` (face_alignment, used by Wav2Lip; entry `s3fd_fan`): keys `conv1_1` ... `fc7`,
  `conv3_3_norm`, `*_mbox_conf` / `*_mbox_loc`; its fc6 has padding 3 and no dilation, all pools floor.
`S3FDNet` holds its parameters under the syncnet_python names; `load_s3fd_state_dict` renames a
face_alignment file's keys to them and picks the matching layout, so either file loads strictly.

Detection follows the references: the frame is resized by `scale` (cv2 INTER_LINEAR, reproduced exactly),
made float and mean-subtracted in RGB channel order, scores are a softmax over (background, face) where the
first head max-pools three background channels, boxes are decoded against one square prior per cell
(size 4 x stride, variances 0.1 / 0.2), kept above `confidence`, suppressed at IoU 0.3 (top 750), mapped to
the original frame, and finally suppressed again at IoU 0.1 as syncnet_python does.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import nms

from tfbench.data.faces_crop import rescale_uint8
from tfbench.errors import WeightsError

Layout = Literal["syncnet", "fan"]

# (in, out) channels of the 15 VGG convolutions, with their positions in syncnet_python's `vgg` list
# (ReLUs and pools fill the other positions, so these indices are what the state_dict keys carry).
_VGG_CONVS = (
    (0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256), (14, 256, 256),
    (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512), (28, 512, 512),
    (31, 512, 1024), (33, 1024, 1024),
)  # fmt: skip
_POOLS = (4, 9, 16, 23, 30)
_FAN_VGG_NAMES = (
    "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1", "conv4_2",
    "conv4_3", "conv5_1", "conv5_2", "conv5_3", "fc6", "fc7",
)  # fmt: skip
_FAN_EXTRAS = ("conv6_1", "conv6_2", "conv7_1", "conv7_2")
_FAN_HEADS = ("conv3_3_norm", "conv4_3_norm", "conv5_3_norm", "fc7", "conv6_2", "conv7_2")
_SOURCE_CHANNELS = (256, 512, 512, 1024, 512, 256)
_L2NORMS = (
    ("L2Norm3_3", "conv3_3_norm", 256, 10.0),
    ("L2Norm4_3", "conv4_3_norm", 512, 8.0),
    ("L2Norm5_3", "conv5_3_norm", 512, 5.0),
)
_STRIDES = (4, 8, 16, 32, 64, 128)
_VARIANCES = (0.1, 0.2)
MEANS_RGB: dict[Layout, tuple[float, float, float]] = {
    "syncnet": (123.0, 117.0, 104.0),
    "fan": (104.0, 117.0, 123.0),
}
"""Mean subtracted per RGB channel. syncnet_python turns RGB into BGR, subtracts (104, 117, 123) and turns
it back, i.e. R-123, G-117, B-104 in RGB order; Wav2Lip flips cv2's BGR frames to RGB and subtracts
(104, 117, 123) from them as they are, i.e. R-104, G-117, B-123."""


class L2Norm(nn.Module):
    """Channel-wise L2 normalisation with a learned per-channel scale (S3FD's conv3_3/4_3/5_3 norms)."""

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10
        return x / norm * self.weight.view(1, -1, 1, 1)


class S3FDNet(nn.Module):
    """The S3FD network; parameters are named as in syncnet_python's `sfd_face.pth`.

    `layout` selects the two places where the published networks differ (see the module docstring).
    `forward` returns, for each of the six sources, (face probability (B, H, W), box offsets (B, H, W, 4)).
    """

    def __init__(self, layout: Layout = "syncnet") -> None:
        super().__init__()
        self.layout = layout
        vgg: list[nn.Module] = [nn.ReLU(inplace=True) for _ in range(35)]
        for index, c_in, c_out in _VGG_CONVS:
            if index == 31:  # fc6
                dilation, padding = (6, 6) if layout == "syncnet" else (1, 3)
                vgg[index] = nn.Conv2d(c_in, c_out, 3, padding=padding, dilation=dilation)
            else:
                vgg[index] = nn.Conv2d(c_in, c_out, 1 if index == 33 else 3, padding=0 if index == 33 else 1)
        for index in _POOLS:
            vgg[index] = nn.MaxPool2d(2, 2, ceil_mode=(index == 16 and layout == "syncnet"))
        self.vgg = nn.ModuleList(vgg)
        self.L2Norm3_3, self.L2Norm4_3, self.L2Norm5_3 = (L2Norm(c, s) for _, _, c, s in _L2NORMS)
        self.extras = nn.ModuleList(
            [
                nn.Conv2d(1024, 256, 1),
                nn.Conv2d(256, 512, 3, 2, 1),
                nn.Conv2d(512, 128, 1),
                nn.Conv2d(128, 256, 3, 2, 1),
            ]
        )
        self.loc = nn.ModuleList(nn.Conv2d(c, 4, 3, padding=1) for c in _SOURCE_CHANNELS)
        self.conf = nn.ModuleList(
            nn.Conv2d(c, 4 if i == 0 else 2, 3, padding=1) for i, c in enumerate(_SOURCE_CHANNELS)
        )

    def _sources(self, x: torch.Tensor) -> list[torch.Tensor]:
        sources = []
        norms = {16: self.L2Norm3_3, 23: self.L2Norm4_3, 30: self.L2Norm5_3}
        for index, layer in enumerate(self.vgg):
            if index in norms:  # the norms read conv3_3/4_3/5_3 (after ReLU), before the next pool
                sources.append(norms[index](x))
            x = layer(x)
        sources.append(x)  # fc7
        for index, layer in enumerate(self.extras):
            x = F.relu(layer(x))
            if index % 2 == 1:
                sources.append(x)
        return sources

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for index, source in enumerate(self._sources(x)):
            conf, loc = self.conf[index](source), self.loc[index](source)
            if index == 0:  # max-out background: three background channels, one face channel
                conf = torch.cat([conf[:, :3].max(dim=1, keepdim=True).values, conf[:, 3:]], dim=1)
            face = conf.softmax(dim=1)[:, 1]
            out.append((face, loc.permute(0, 2, 3, 1)))
        return out


def fan_to_syncnet_keys() -> dict[str, str]:
    """Parameter names of face_alignment's S3FD file -> syncnet_python's (without .weight/.bias)."""
    mapping = {fan: f"vgg.{index}" for fan, (index, _, _) in zip(_FAN_VGG_NAMES, _VGG_CONVS, strict=True)}
    mapping.update({fan: f"extras.{i}" for i, fan in enumerate(_FAN_EXTRAS)})
    for i, head in enumerate(_FAN_HEADS):
        mapping[f"{head}_mbox_loc"] = f"loc.{i}"
        mapping[f"{head}_mbox_conf"] = f"conf.{i}"
    mapping.update({fan: ours for ours, fan, _, _ in _L2NORMS})
    return mapping


def _layout_of(state: Mapping[str, torch.Tensor]) -> Layout:
    if "vgg.0.weight" in state:
        return "syncnet"
    if "conv1_1.weight" in state:
        return "fan"
    raise WeightsError(
        "not an S3FD state_dict: expected syncnet_python keys (vgg.0.weight, ...) or face_alignment keys "
        f"(conv1_1.weight, ...), found {', '.join(list(state)[:4])}"
    )


def load_s3fd_state_dict(state: Mapping[str, torch.Tensor], layout: Layout | None = None) -> S3FDNet:
    """Build the network matching `state`'s key format and load it strictly (a missing, extra or
    misshapen tensor is a `WeightsError` naming it). A face_alignment file loads with the 'fan' layout."""
    detected = _layout_of(state)
    if layout is not None and layout != detected:
        raise WeightsError(
            f"S3FD weights are in the {detected!r} key format, but layout {layout!r} was requested"
        )
    if detected == "fan":
        mapping = fan_to_syncnet_keys()
        renamed = {}
        for key, value in state.items():
            module, _, leaf = key.rpartition(".")
            renamed[f"{mapping.get(module, module)}.{leaf}" if module else mapping.get(key, key)] = value
        state = renamed
    with torch.device("meta"):  # shapes only: no time spent on a random initialisation
        net = S3FDNet(detected)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    bad = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or extra or bad:
        problems = (("missing", missing), ("unexpected", extra), ("wrong shape", bad))
        parts = [f"{label}: {', '.join(keys[:4])}" for label, keys in problems if keys]
        raise WeightsError(f"S3FD weights do not match the network ({'; '.join(parts)})")
    net.load_state_dict({k: v.float() for k, v in state.items()}, assign=True)
    return net.eval()


def load_s3fd(path: Path, device: str = "cpu") -> S3FDNet:
    """Load an S3FD weights file (either published format) onto `device`; a bad file is a WeightsError."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or non-torch file
        raise WeightsError(f"{path}: cannot be read as a torch state_dict ({exc})") from exc
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise WeightsError(f"{path}: holds a {type(state).__name__}, not a state_dict")
    return load_s3fd_state_dict(state).to(device)


def _priors(height: int, width: int, stride: int, device: torch.device) -> torch.Tensor:
    """(H*W, 4) anchors (cx, cy, w, h) in input pixels: cell centres (j + 0.5) * stride, side 4 * stride."""
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij"
    )
    centres = torch.stack([xs, ys], dim=-1).reshape(-1, 2).float().add(0.5).mul(stride)
    return torch.cat([centres, torch.full_like(centres, 4.0 * stride)], dim=1)


def decode_boxes(loc: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """SSD box decoding: offsets (N, 4) against priors (N, 4) (cx, cy, w, h) -> (N, 4) (x1, y1, x2, y2)."""
    centre = priors[:, :2] + loc[:, :2] * _VARIANCES[0] * priors[:, 2:]
    size = priors[:, 2:] * torch.exp(loc[:, 2:] * _VARIANCES[1])
    top_left = centre - size / 2
    return torch.cat([top_left, top_left + size], dim=1)


@torch.no_grad()
def detect_s3fd(
    net: S3FDNet,
    frames: np.ndarray,
    scale: float = 1.0,
    confidence: float = 0.9,
    nms_iou: float = 0.3,
    final_iou: float = 0.1,
    top_k: int = 750,
) -> list[np.ndarray]:
    """Faces in (B, H, W, 3) uint8 RGB frames: one (N_i, 5) float32 array [x1, y1, x2, y2, score] per frame,
    in frame pixels, highest score first. See the module docstring for the steps and their references."""
    device = next(net.parameters()).device
    batch, height, width = frames.shape[:3]
    if scale != 1.0:  # cv2.resize(fx=scale, fy=scale) INTER_LINEAR, bit-exact, as the references do
        frames = np.stack([rescale_uint8(frame, scale) for frame in frames])
    new_h, new_w = frames.shape[1:3]
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float()
    mean = torch.tensor(MEANS_RGB[net.layout], device=device).view(1, 3, 1, 1)
    outputs = net(x - mean)
    to_frame = torch.tensor([width / new_w, height / new_h] * 2, device=device)
    results = []
    for b in range(batch):
        boxes, scores = [], []
        for (face, loc), stride in zip(outputs, _STRIDES, strict=True):
            prob = face[b].reshape(-1)
            keep = prob > confidence
            if keep.any():
                priors = _priors(face.shape[1], face.shape[2], stride, device)[keep]
                boxes.append(decode_boxes(loc[b].reshape(-1, 4)[keep], priors))
                scores.append(prob[keep])
        if not boxes:
            results.append(np.zeros((0, 5), np.float32))
            continue
        box, score = torch.cat(boxes), torch.cat(scores)
        kept = nms(box, score, nms_iou)[:top_k]
        box, score = box[kept] * to_frame, score[kept]
        kept = nms(box, score, final_iou)
        results.append(torch.cat([box[kept], score[kept, None]], dim=1).cpu().numpy().astype(np.float32))
    return results
