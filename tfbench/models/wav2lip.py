"""Wav2Lip's generator, its building blocks, and the loader of its published checkpoints (DESIGN.md 4).

tfbench's own implementation of the published architecture (Prajwal et al., "A Lip Sync Expert Is All You
Need", ACM MM 2020): its `state_dict` has the keys and shapes of the released `wav2lip.pth` and
`wav2lip_gan.pth`, so those files load unchanged. The parameter names come from the reference's layer
wrappers, which keep a convolution and its BatchNorm in a Sequential called `conv_block` (indices 0 and 1);
`ConvBlock` and `ConvTransposeBlock` reproduce that naming. The expert SyncNet (`wav2lip_syncnet`) reuses
`ConvBlock` and the checkpoint helpers defined here.

Network inputs, as the reference was trained (cv2-decoded frames, so BGR channel order):
- face: (B, 6, 96, 96) float in [0, 1]: the target frame with its lower half (rows 48:) zeroed, then the
  reference frame, both BGR. `face_input` builds this from tfbench's uint8 RGB crops;
- audio: (B, 1, 80, 16) Wav2Lip mel window (`tfbench.audio.wav2lip_mel` / `mel_windows`).
Output: (B, 3, 96, 96) BGR in [0, 1] (a sigmoid); `to_rgb_uint8` turns it back into tfbench crops.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import torch
from torch import Tensor, nn

from tfbench.errors import TfbenchError

__all__ = [
    "AUDIO_INPUT_SHAPE",
    "FACE_SIZE",
    "ConvBlock",
    "ConvTransposeBlock",
    "Wav2Lip",
    "Wav2LipGenerator",
    "audio_encoder",
    "check_state_dict",
    "face_input",
    "load_into",
    "load_wav2lip",
    "read_checkpoint",
    "to_rgb_uint8",
]

FACE_SIZE = 96
"""Wav2Lip's face crop: 96x96 pixels."""
AUDIO_INPUT_SHAPE = (1, 80, 16)
"""One audio window: 1 channel, 80 mel bands, 16 steps of 12.5 ms (0.2 s, five video frames at 25 fps)."""

_Size = int | tuple[int, int]
ModuleT = TypeVar("ModuleT", bound=nn.Module)


class ConvBlock(nn.Module):
    """Conv2d -> BatchNorm2d (-> + input when `residual`) -> ReLU, named as the reference's `Conv2d` wrapper.

    The residual sum happens after BatchNorm and before the ReLU, so a residual block needs equal input and
    output shapes (stride 1, same padding, c_in == c_out).
    """

    def __init__(
        self, c_in: int, c_out: int, kernel: _Size, stride: _Size, padding: _Size, residual: bool = False
    ) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv2d(c_in, c_out, kernel, stride, padding), nn.BatchNorm2d(c_out)
        )
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv_block(x)
        return self.act(out + x if self.residual else out)


class ConvTransposeBlock(nn.Module):
    """ConvTranspose2d -> BatchNorm2d -> ReLU, named as the reference's `Conv2dTranspose` wrapper."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, output_padding: int = 0
    ) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding, output_padding), nn.BatchNorm2d(c_out)
        )
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv_block(x))


def _stage(c_in: int, c_out: int, stride: _Size, n_residual: int) -> list[nn.Module]:
    """A strided 3x3 ConvBlock (padding 1), then `n_residual` 3x3 residual ConvBlocks at `c_out` channels."""
    return [
        ConvBlock(c_in, c_out, 3, stride, 1),
        *(ConvBlock(c_out, c_out, 3, 1, 1, residual=True) for _ in range(n_residual)),
    ]


def _up_stage(c_in: int, c_out: int, n_residual: int = 2) -> nn.Sequential:
    """A x2 transposed-convolution upsampling followed by `n_residual` residual ConvBlocks."""
    return nn.Sequential(
        ConvTransposeBlock(c_in, c_out, 3, 2, 1, output_padding=1),
        *(ConvBlock(c_out, c_out, 3, 1, 1, residual=True) for _ in range(n_residual)),
    )


def audio_encoder(residual_at_256: int = 1) -> nn.Sequential:
    """The mel encoder of the generator and of the expert SyncNet: (B, 1, 80, 16) -> (B, 512, 1, 1).

    Strides (3, 1), 3, (3, 2) take 80x16 to 3x3, a 3x3 valid convolution to 1x1. The two networks differ
    only in the residual blocks at 256 channels: one in the generator, two in the SyncNet.
    """
    return nn.Sequential(
        *_stage(1, 32, 1, 2),
        *_stage(32, 64, (3, 1), 2),
        *_stage(64, 128, 3, 2),
        *_stage(128, 256, (3, 2), residual_at_256),
        ConvBlock(256, 512, 3, 1, 0),
        ConvBlock(512, 512, 1, 1, 0),
    )


class Wav2LipGenerator(nn.Module):
    """Wav2Lip's generator: a face encoder, an audio encoder and a U-Net decoder with skips from the face.

    Face encoder (`face_encoder_blocks`, 7 stages): 96 -> 48 -> 24 -> 12 -> 6 -> 3 -> 1 pixels at
    16, 32, 64, 128, 256, 512, 512 channels. Audio encoder (`audio_encoder`): 80x16 mel -> 512x1x1.
    Decoder (`face_decoder_blocks`, 7 stages): starts from the audio embedding; after each stage the face
    feature of the same resolution is concatenated (deepest first), 1 -> 3 -> ... -> 96 pixels.
    `output_block`: ConvBlock 80 -> 32, a 1x1 Conv2d 32 -> 3 and a sigmoid.

    Example:
        >>> net = Wav2LipGenerator().eval()
        >>> net(torch.zeros(2, 1, 80, 16), torch.zeros(2, 6, 96, 96)).shape
        torch.Size([2, 3, 96, 96])
    """

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList(
            [
                nn.Sequential(ConvBlock(6, 16, 7, 1, 3)),  # 96
                nn.Sequential(*_stage(16, 32, 2, 2)),  # 48
                nn.Sequential(*_stage(32, 64, 2, 3)),  # 24
                nn.Sequential(*_stage(64, 128, 2, 2)),  # 12
                nn.Sequential(*_stage(128, 256, 2, 2)),  # 6
                nn.Sequential(*_stage(256, 512, 2, 1)),  # 3
                nn.Sequential(ConvBlock(512, 512, 3, 1, 0), ConvBlock(512, 512, 1, 1, 0)),  # 1
            ]
        )
        self.audio_encoder = audio_encoder(residual_at_256=1)
        self.face_decoder_blocks = nn.ModuleList(
            [
                nn.Sequential(ConvBlock(512, 512, 1, 1, 0)),  # 1
                nn.Sequential(  # 3
                    ConvTransposeBlock(1024, 512, 3, 1, 0), ConvBlock(512, 512, 3, 1, 1, residual=True)
                ),
                _up_stage(1024, 512),  # 6
                _up_stage(768, 384),  # 12
                _up_stage(512, 256),  # 24
                _up_stage(320, 128),  # 48
                _up_stage(160, 64),  # 96
            ]
        )
        self.output_block = nn.Sequential(ConvBlock(80, 32, 3, 1, 1), nn.Conv2d(32, 3, 1, 1, 0), nn.Sigmoid())

    def forward(self, audio: Tensor, face: Tensor) -> Tensor:
        """(B, 1, 80, 16) mel windows and (B, 6, 96, 96) faces -> (B, 3, 96, 96) faces in [0, 1].

        The argument order is the reference's (`model(mel_batch, img_batch)`).
        """
        if audio.ndim != 4 or tuple(audio.shape[1:]) != AUDIO_INPUT_SHAPE:
            raise TfbenchError(f"Wav2Lip audio must be (B, 1, 80, 16), got {tuple(audio.shape)}")
        if face.ndim != 4 or tuple(face.shape[1:]) != (6, FACE_SIZE, FACE_SIZE):
            raise TfbenchError(f"Wav2Lip faces must be (B, 6, 96, 96), got {tuple(face.shape)}")
        skips = []
        x = face
        for block in self.face_encoder_blocks:
            x = block(x)
            skips.append(x)
        x = self.audio_encoder(audio)
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), skips.pop()), dim=1)
        out: Tensor = self.output_block(x)
        return out


Wav2Lip = Wav2LipGenerator
"""The reference's name for the network."""


# --------------------------------------------------------------------------- tensors in and out
def face_input(target: Tensor, reference: Tensor) -> Tensor:
    """Build the generator's (B, 6, 96, 96) input from uint8 RGB crops (B, 96, 96, 3) on any device.

    As the reference's inference does: the target with rows 48: set to 0, then the reference, both scaled
    to [0, 1]. Channels are flipped to BGR because Wav2Lip was trained on frames decoded by OpenCV; a real
    checkpoint fed RGB would see red and blue swapped (skin tones it never saw).
    """
    if target.dtype != torch.uint8 or reference.dtype != torch.uint8:
        raise TfbenchError(f"Wav2Lip crops must be uint8, got {target.dtype} and {reference.dtype}")
    if target.shape != reference.shape or target.ndim != 4 or tuple(target.shape[1:]) != (96, 96, 3):
        raise TfbenchError(
            f"Wav2Lip crops must be (B, 96, 96, 3), got target {tuple(target.shape)}, "
            f"reference {tuple(reference.shape)}"
        )
    both = torch.stack((target, reference), dim=1).flip(-1)  # (B, 2, H, W, 3), RGB -> BGR
    x = both.permute(0, 1, 4, 2, 3).to(torch.float32).div_(255.0)  # (B, 2, 3, H, W)
    x[:, 0, :, FACE_SIZE // 2 :] = 0.0
    return x.reshape(x.shape[0], 6, FACE_SIZE, FACE_SIZE)


def to_rgb_uint8(prediction: Tensor) -> Tensor:
    """(B, 3, H, W) BGR output in [0, 1] -> (B, H, W, 3) uint8 RGB, truncating as the reference does.

    Wav2Lip writes `(pred * 255).astype(np.uint8)`, which truncates toward zero; tfbench keeps that rule
    (rounding instead would lift every pixel by half a level on average against the reference's frames).
    """
    scaled = (prediction.detach() * 255.0).clamp_(0.0, 255.0)
    return scaled.to(torch.uint8).flip(1).permute(0, 2, 3, 1).contiguous()


# --------------------------------------------------------------------------- checkpoints
def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]


def read_checkpoint(path: str | Path, what: str) -> dict[str, Tensor]:
    """The state_dict inside a Wav2Lip-style checkpoint, with DataParallel's `module.` prefixes removed.

    The published files (`wav2lip.pth`, `wav2lip_gan.pth`, `lipsync_expert.pth`) are dicts holding
    `state_dict`, `optimizer` (Adam state), `global_step` and `global_epoch`, written by Wav2Lip's training
    scripts under PyTorch 1.1 (its requirements.txt), so in the legacy (pre-zip) format. Their registered
    sizes agree: 4 bytes per state_dict element plus 8 per parameter (Adam's two moments) is 435.67 MB for
    the generator (file: 435.81 MB) and 197.28 MB for the expert (file: 197.36 MB). Every object in them is a
    dict, list, tuple, int, float, bool or tensor, which `weights_only=True` accepts, legacy format included
    (the tests write such a file and read it back), so no code from the file ever runs and there is no
    `weights_only=False` fallback. A bare state_dict (no `state_dict` key) is accepted too, for users' own
    checkpoints. The file is read onto the CPU: the optimizer state is twice the model's size and is dropped
    before anything moves to an accelerator.

    Raises:
        TfbenchError: one line naming `path`: missing, unreadable, or not a dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise TfbenchError(f"{what} weights not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch raise many unrelated types for a wrong file
        raise TfbenchError(
            f"{path} is not a readable {what} checkpoint ({type(exc).__name__}: {_first_line(exc)})"
        ) from exc
    if not isinstance(checkpoint, Mapping):
        raise TfbenchError(
            f"{path} is not a {what} checkpoint: it holds a {type(checkpoint).__name__}, expected a dict"
        )
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping):
        raise TfbenchError(f"{path} is not a {what} checkpoint: 'state_dict' is a {type(state).__name__}")
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise TfbenchError(
                f"{path} is not a {what} checkpoint: entry {key!r} is a {type(value).__name__}, not a tensor"
            )
        out[key.removeprefix("module.")] = value
    return out


def check_state_dict(state: Mapping[str, Tensor], model: nn.Module, source: str, what: str) -> None:
    """Raise a one-line TfbenchError naming `source` and the first key of `state` that does not fit `model`.

    Every tensor must exist in `model` with the same shape, and every parameter and buffer of `model` must be
    present, except BatchNorm's `num_batches_tracked` counters (eval-mode outputs do not depend on them).
    """
    expected = model.state_dict()
    for key, value in state.items():
        if key not in expected:
            raise TfbenchError(f"{source} is not a {what} checkpoint: unexpected key {key!r}")
        if tuple(value.shape) != tuple(expected[key].shape):
            raise TfbenchError(
                f"{source} is not a {what} checkpoint: {key!r} has shape {tuple(value.shape)}, "
                f"expected {tuple(expected[key].shape)}"
            )
    for key in expected:
        if key not in state and not key.endswith("num_batches_tracked"):
            raise TfbenchError(f"{source} is not a {what} checkpoint: missing key {key!r}")


def load_into(
    network: Callable[[], ModuleT], path: str | Path, what: str, device: str | torch.device
) -> ModuleT:
    """Build `network()` with the weights of the checkpoint at `path`, on `device`, in eval mode.

    The network is first built on the meta device (no memory, no random initialisation: every tensor comes
    from the file, which saves about a second per load of the generator on a CPU), checked against the file
    with `check_state_dict`, then given the file's tensors, cast to the network's dtypes. BatchNorm counters
    absent from old files are set to 0.
    """
    state = read_checkpoint(path, what)
    with torch.device("meta"):
        model = network()
    check_state_dict(state, model, str(path), what)
    expected = model.state_dict()
    full = {key: torch.zeros((), dtype=torch.long) for key in expected if key.endswith("num_batches_tracked")}
    full.update({key: value.to(expected[key].dtype) for key, value in state.items()})
    model.load_state_dict(full, strict=True, assign=True)
    return model.to(device).eval()


def load_wav2lip(path: str | Path, device: str | torch.device = "cpu") -> Wav2LipGenerator:
    """Load `wav2lip.pth` / `wav2lip_gan.pth` (or a checkpoint of the same architecture) in eval mode.

    Raises:
        TfbenchError: the file is missing, unreadable, or its keys or shapes differ from the generator
            (the message names the file and the first mismatching key).
    """
    return load_into(Wav2LipGenerator, path, "Wav2Lip generator", device)
