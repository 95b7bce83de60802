"""Wav2Lip: generator and expert SyncNet checkpoints, their loaders, and the `wav2lip` model's inference."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import tfbench.baselines  # noqa: F401  (registers wav2lip and wav2lip_gan)
from tfbench import weights
from tfbench.audio import wav2lip_mel
from tfbench.baselines.wav2lip import Wav2LipModel
from tfbench.data.synthetic import SynthConfig, generate_clip
from tfbench.errors import TfbenchError
from tfbench.media import read_video, write_video
from tfbench.models.protocol import MODELS, GenerationRequest
from tfbench.models.wav2lip import load_wav2lip
from tfbench.models.wav2lip_syncnet import expert_face_input, load_wav2lip_syncnet, sync_probability

# The published architectures' layer specifications, one row per Conv+BatchNorm block of the reference
# (`models/conv.py` Conv2d / Conv2dTranspose): (key prefix, convolution weight shape). A ConvTranspose2d
# weight is (in, out, kh, kw). Each row stands for the seven keys `_block_keys` spells out.
GENERATOR_BLOCKS: list[tuple[str, tuple[int, ...]]] = [
    ("face_encoder_blocks.0.0", (16, 6, 7, 7)),
    ("face_encoder_blocks.1.0", (32, 16, 3, 3)),
    ("face_encoder_blocks.1.1", (32, 32, 3, 3)),
    ("face_encoder_blocks.1.2", (32, 32, 3, 3)),
    ("face_encoder_blocks.2.0", (64, 32, 3, 3)),
    ("face_encoder_blocks.2.1", (64, 64, 3, 3)),
    ("face_encoder_blocks.2.2", (64, 64, 3, 3)),
    ("face_encoder_blocks.2.3", (64, 64, 3, 3)),
    ("face_encoder_blocks.3.0", (128, 64, 3, 3)),
    ("face_encoder_blocks.3.1", (128, 128, 3, 3)),
    ("face_encoder_blocks.3.2", (128, 128, 3, 3)),
    ("face_encoder_blocks.4.0", (256, 128, 3, 3)),
    ("face_encoder_blocks.4.1", (256, 256, 3, 3)),
    ("face_encoder_blocks.4.2", (256, 256, 3, 3)),
    ("face_encoder_blocks.5.0", (512, 256, 3, 3)),
    ("face_encoder_blocks.5.1", (512, 512, 3, 3)),
    ("face_encoder_blocks.6.0", (512, 512, 3, 3)),
    ("face_encoder_blocks.6.1", (512, 512, 1, 1)),
    ("audio_encoder.0", (32, 1, 3, 3)),
    ("audio_encoder.1", (32, 32, 3, 3)),
    ("audio_encoder.2", (32, 32, 3, 3)),
    ("audio_encoder.3", (64, 32, 3, 3)),
    ("audio_encoder.4", (64, 64, 3, 3)),
    ("audio_encoder.5", (64, 64, 3, 3)),
    ("audio_encoder.6", (128, 64, 3, 3)),
    ("audio_encoder.7", (128, 128, 3, 3)),
    ("audio_encoder.8", (128, 128, 3, 3)),
    ("audio_encoder.9", (256, 128, 3, 3)),
    ("audio_encoder.10", (256, 256, 3, 3)),
    ("audio_encoder.11", (512, 256, 3, 3)),
    ("audio_encoder.12", (512, 512, 1, 1)),
    ("face_decoder_blocks.0.0", (512, 512, 1, 1)),
    ("face_decoder_blocks.1.0", (1024, 512, 3, 3)),  # transposed
    ("face_decoder_blocks.1.1", (512, 512, 3, 3)),
    ("face_decoder_blocks.2.0", (1024, 512, 3, 3)),  # transposed
    ("face_decoder_blocks.2.1", (512, 512, 3, 3)),
    ("face_decoder_blocks.2.2", (512, 512, 3, 3)),
    ("face_decoder_blocks.3.0", (768, 384, 3, 3)),  # transposed
    ("face_decoder_blocks.3.1", (384, 384, 3, 3)),
    ("face_decoder_blocks.3.2", (384, 384, 3, 3)),
    ("face_decoder_blocks.4.0", (512, 256, 3, 3)),  # transposed
    ("face_decoder_blocks.4.1", (256, 256, 3, 3)),
    ("face_decoder_blocks.4.2", (256, 256, 3, 3)),
    ("face_decoder_blocks.5.0", (320, 128, 3, 3)),  # transposed
    ("face_decoder_blocks.5.1", (128, 128, 3, 3)),
    ("face_decoder_blocks.5.2", (128, 128, 3, 3)),
    ("face_decoder_blocks.6.0", (160, 64, 3, 3)),  # transposed
    ("face_decoder_blocks.6.1", (64, 64, 3, 3)),
    ("face_decoder_blocks.6.2", (64, 64, 3, 3)),
    ("output_block.0", (32, 80, 3, 3)),
]
GENERATOR_PLAIN: list[tuple[str, tuple[int, ...]]] = [  # the final 1x1 nn.Conv2d, no BatchNorm
    ("output_block.1.weight", (3, 32, 1, 1)),
    ("output_block.1.bias", (3,)),
]
SYNCNET_BLOCKS: list[tuple[str, tuple[int, ...]]] = [
    ("face_encoder.0", (32, 15, 7, 7)),
    ("face_encoder.1", (64, 32, 5, 5)),
    ("face_encoder.2", (64, 64, 3, 3)),
    ("face_encoder.3", (64, 64, 3, 3)),
    ("face_encoder.4", (128, 64, 3, 3)),
    ("face_encoder.5", (128, 128, 3, 3)),
    ("face_encoder.6", (128, 128, 3, 3)),
    ("face_encoder.7", (128, 128, 3, 3)),
    ("face_encoder.8", (256, 128, 3, 3)),
    ("face_encoder.9", (256, 256, 3, 3)),
    ("face_encoder.10", (256, 256, 3, 3)),
    ("face_encoder.11", (512, 256, 3, 3)),
    ("face_encoder.12", (512, 512, 3, 3)),
    ("face_encoder.13", (512, 512, 3, 3)),
    ("face_encoder.14", (512, 512, 3, 3)),
    ("face_encoder.15", (512, 512, 3, 3)),
    ("face_encoder.16", (512, 512, 1, 1)),
    ("audio_encoder.0", (32, 1, 3, 3)),
    ("audio_encoder.1", (32, 32, 3, 3)),
    ("audio_encoder.2", (32, 32, 3, 3)),
    ("audio_encoder.3", (64, 32, 3, 3)),
    ("audio_encoder.4", (64, 64, 3, 3)),
    ("audio_encoder.5", (64, 64, 3, 3)),
    ("audio_encoder.6", (128, 64, 3, 3)),
    ("audio_encoder.7", (128, 128, 3, 3)),
    ("audio_encoder.8", (128, 128, 3, 3)),
    ("audio_encoder.9", (256, 128, 3, 3)),
    ("audio_encoder.10", (256, 256, 3, 3)),
    ("audio_encoder.11", (256, 256, 3, 3)),
    ("audio_encoder.12", (512, 256, 3, 3)),
    ("audio_encoder.13", (512, 512, 1, 1)),
]


TRANSPOSED = {f"face_decoder_blocks.{i}.0" for i in range(1, 7)}  # ConvTranspose2d: out = weight[1]


def _block_keys(prefix: str, weight: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    """The seven state_dict entries of one reference block: conv (index 0) and BatchNorm (index 1)."""
    out_channels = weight[1] if prefix in TRANSPOSED else weight[0]
    c = (out_channels,)
    return [
        (f"{prefix}.conv_block.0.weight", weight),
        (f"{prefix}.conv_block.0.bias", c),
        (f"{prefix}.conv_block.1.weight", c),
        (f"{prefix}.conv_block.1.bias", c),
        (f"{prefix}.conv_block.1.running_mean", c),
        (f"{prefix}.conv_block.1.running_var", c),
        (f"{prefix}.conv_block.1.num_batches_tracked", ()),
    ]


def _expected(blocks: list[tuple[str, tuple[int, ...]]], plain: list[tuple[str, tuple[int, ...]]]) -> dict:
    return dict([entry for prefix, w in blocks for entry in _block_keys(prefix, w)] + plain)


GENERATOR_KEYS = _expected(GENERATOR_BLOCKS, GENERATOR_PLAIN)
SYNCNET_KEYS = _expected(SYNCNET_BLOCKS, [])


def _random_state(spec: dict[str, tuple[int, ...]], seed: int) -> dict[str, Tensor]:
    """Random tensors of the listed shapes, scaled so that 50 layers stay finite."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, Tensor] = {}
    for key, shape in spec.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif len(shape) == 4:
            state[key] = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        else:
            state[key] = torch.randn(shape, generator=g) * 0.1 + (1.0 if key.endswith("1.weight") else 0.0)
    return state


def _save_published_format(state: dict[str, Tensor], path: Path, prefix: str = "module.") -> None:
    """A checkpoint as Wav2Lip's training scripts save it, in PyTorch 1.x's legacy (pre-zip) format."""
    ids = list(range(len(state)))
    optimizer = {  # Adam state trimmed to two parameters; torch 1.1 stored `step` as a Python int
        "state": {i: {"step": 1000, "exp_avg": torch.zeros(3), "exp_avg_sq": torch.ones(3)} for i in ids[:2]},
        "param_groups": [
            {
                "lr": 1e-4,
                "betas": (0.9, 0.999),
                "eps": 1e-8,
                "weight_decay": 0,
                "amsgrad": False,
                "params": ids,
            }
        ],
    }
    checkpoint = {
        "state_dict": {prefix + k: v for k, v in state.items()},
        "optimizer": optimizer,
        "global_step": 250000,
        "global_epoch": 42,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path, _use_new_zipfile_serialization=False)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Tensor]]]:
    """TFBENCH_HOME with random generator and expert checkpoints at the registry's paths."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TFBENCH_HOME", str(tmp_path_factory.mktemp("home")))
        original = weights.spec  # the registered sizes are the real files'; these are random copies
        mp.setattr(weights, "spec", lambda name: dataclasses.replace(original(name), size=None))
        states = {
            "wav2lip": _random_state(GENERATOR_KEYS, 0),
            "wav2lip_syncnet": _random_state(SYNCNET_KEYS, 1),
        }
        _save_published_format(states["wav2lip"], weights.expected_path("wav2lip"))
        _save_published_format(states["wav2lip_syncnet"], weights.expected_path("wav2lip_syncnet"), prefix="")
        yield states


@pytest.fixture(scope="module")
def model(home: dict) -> Wav2LipModel:
    loaded = MODELS.get("wav2lip").load("cpu")
    assert isinstance(loaded, Wav2LipModel)
    return loaded


def _shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_generator_checkpoint_loads_through_registry(home: dict, model: Wav2LipModel) -> None:
    assert len(GENERATOR_KEYS) == 352
    assert _shapes(model.network) == GENERATOR_KEYS
    loaded = model.network.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in home["wav2lip"].items())
    assert not model.network.training and model.batch_size == 128 and model.crop_size == 96
    assert sum(p.numel() for p in model.network.parameters()) == 36_298_035


def test_expert_syncnet_checkpoint_and_sync_probability(home: dict) -> None:
    net = load_wav2lip_syncnet(weights.resolve("wav2lip_syncnet"))
    assert len(SYNCNET_KEYS) == 217 and _shapes(net) == SYNCNET_KEYS
    assert all(torch.equal(net.state_dict()[k], v) for k, v in home["wav2lip_syncnet"].items())
    assert sum(p.numel() for p in net.parameters()) == 16_435_072
    windows = torch.randint(0, 256, (3, 5, 96, 96, 3), dtype=torch.uint8)
    faces = expert_face_input(windows)
    assert faces.shape == (3, 15, 48, 96)
    # channel 3 * t + c is colour c (BGR) of frame t, rows 48: of the crop
    assert torch.equal(faces[1, 3 * 2 + 0], windows[1, 2, 48:, :, 2].float() / 255)
    assert torch.equal(faces[1, 3 * 4 + 2], windows[1, 4, 48:, :, 0].float() / 255)
    mel = torch.randn(3, 1, 80, 16)
    with torch.inference_mode():
        audio, video = net(mel, faces)
        prob = net.sync_probability(mel, faces)
    assert audio.shape == video.shape == (3, 512)
    torch.testing.assert_close(audio.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(prob, (audio * video).sum(1))
    torch.testing.assert_close(sync_probability(audio, video), prob)
    assert bool(((prob >= 0) & (prob <= 1 + 1e-6)).all())


def _synthetic_request() -> GenerationRequest:
    clip = generate_clip(SynthConfig(layout="lrs2", speakers=1, clips=1, seconds=1.2, seed=0), 0, 0)
    frames = torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float()
    crops = F.interpolate(frames, size=(96, 96), mode="bilinear", antialias=True, align_corners=False)
    faces = crops.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    return GenerationRequest(
        "synthetic", faces, faces[:1], clip.audio, fps=clip.fps, sample_rate=clip.sample_rate
    )


def test_generate_synthetic_clip_writes_video_with_audio(model: Wav2LipModel, tmp_path: Path) -> None:
    request = _synthetic_request()
    captured: list[tuple[Tensor, Tensor]] = []
    handle = model.network.register_forward_pre_hook(lambda m, args: captured.append(args))
    model.batch_size = 8
    try:
        out = model.generate(request)
    finally:
        handle.remove()
        model.batch_size = 128
    n = request.n_frames
    assert n == 30 and out.shape == (n, 96, 96, 3) and out.dtype == np.uint8
    assert [a.shape[0] for a, _ in captured] == [8, 8, 8, 6]  # batched, in order

    # Mel windows: frame i's window starts at int(80 * i / fps) (the last ones clamp to the audio's end).
    mel = torch.from_numpy(wav2lip_mel(request.audio))
    audio = torch.cat([a for a, _ in captured])
    assert audio.shape == (n, 1, 80, 16)
    for i in range(n):
        start = min(int(80 * i / request.fps), mel.shape[1] - 16)
        assert torch.equal(audio[i, 0], mel[:, start : start + 16]), i
    assert int(80 * 20 / 25) == 64 and torch.equal(audio[20, 0], mel[:, 64:80])

    # Faces: masked target then the same frame as reference, BGR in [0, 1].
    face = torch.cat([f for _, f in captured])
    bgr = torch.from_numpy(request.faces).flip(-1).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(face[:, 3:], bgr)
    assert torch.equal(face[:, :3, :48], bgr[:, :, :48])
    assert not face[:, :3, 48:].any()

    path = write_video(tmp_path / "wav2lip.mp4", out, request.fps, request.audio, request.sample_rate)
    video = read_video(path)
    assert video.n_frames == n and video.audio is not None and video.audio.size > 0.9 * request.audio.size


def test_generate_at_29_97_fps_and_output_conversion() -> None:
    class Probe(nn.Module):
        """Returns a fixed BGR colour; records the mel windows it receives."""

        def __init__(self) -> None:
            super().__init__()
            self.mels: list[Tensor] = []

        def forward(self, audio: Tensor, face: Tensor) -> Tensor:
            self.mels.append(audio)
            colour = torch.tensor([0.1, 0.5, 0.999])  # B, G, R
            return colour.view(1, 3, 1, 1).expand(face.shape[0], 3, 96, 96)

    rng = np.random.default_rng(0)
    audio = rng.uniform(-0.5, 0.5, 16000).astype(np.float32)
    faces = rng.integers(0, 256, (25, 96, 96, 3), dtype=np.uint8)
    probe = Probe()
    model = Wav2LipModel(probe, "cpu", batch_size=10)  # type: ignore[arg-type]
    out = model.generate(GenerationRequest("p", faces, faces[:1], audio, fps=29.97))
    assert out.shape == (25, 96, 96, 3)
    assert out[0, 0, 0].tolist() == [254, 127, 25]  # RGB, truncated like (x * 255).astype(uint8)
    mel = torch.from_numpy(wav2lip_mel(audio))
    got = torch.cat(probe.mels)
    for i in (1, 7, 24):
        start = int(80 * i / 29.97)
        assert torch.equal(got[i, 0], mel[:, start : start + 16]), i


def _assert_one_line_error(call, path: Path, fragment: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TfbenchError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and str(path) in message and fragment in message, message


def test_wrong_checkpoints_give_one_line_errors(home: dict, tmp_path: Path) -> None:
    state = dict(home["wav2lip_syncnet"])  # the expert's files are the smaller ones to write
    del state["face_encoder.7.conv_block.0.bias"]
    missing = tmp_path / "missing.pth"
    _save_published_format(state, missing)
    _assert_one_line_error(
        lambda: load_wav2lip_syncnet(missing), missing, "missing key 'face_encoder.7.conv_block.0.bias'"
    )
    # an expert SyncNet file given as a generator, through the registry with a --weights override
    _assert_one_line_error(
        lambda: MODELS.get("wav2lip_gan").load("cpu", {"wav2lip_gan": missing}),
        missing,
        "not a Wav2Lip generator checkpoint: unexpected key 'face_encoder.0.conv_block.0.weight'",
    )

    state = dict(home["wav2lip_syncnet"])
    state["audio_encoder.13.conv_block.0.weight"] = torch.zeros(512, 512, 3, 3)
    shaped = tmp_path / "shape.pth"
    _save_published_format(state, shaped)
    _assert_one_line_error(
        lambda: load_wav2lip_syncnet(shaped), shaped, "(512, 512, 3, 3), expected (512, 512, 1, 1)"
    )

    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], listed)
    _assert_one_line_error(lambda: load_wav2lip(listed), listed, "expected a dict")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"<html>quota exceeded</html>\n" * 10)
    _assert_one_line_error(lambda: load_wav2lip(garbage), garbage, "not a readable")
    _assert_one_line_error(
        lambda: load_wav2lip(tmp_path / "absent.pth"), tmp_path / "absent.pth", "not found"
    )


_RAN: list[str] = []


class _Payload:
    """An object whose unpickling would run code: weights_only=True must refuse it."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (_RAN.append, ("ran",))


def test_loader_never_runs_code_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "payload.pth"
    torch.save({"state_dict": {}, "optimizer": _Payload()}, path)
    _assert_one_line_error(lambda: load_wav2lip(path), path, "not a readable")
    assert _RAN == []


def test_missing_weights_and_registration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TFBENCH_HOME", str(tmp_path))
    assert MODELS.get("wav2lip_gan").weights == ("wav2lip_gan",)
    with pytest.raises(TfbenchError, match="wav2lip_gan"):
        MODELS.get("wav2lip_gan").load("cpu")
    with pytest.raises(TfbenchError, match="crops"):
        Wav2LipModel(nn.Identity()).generate(  # type: ignore[arg-type]
            GenerationRequest(
                "x", np.zeros((2, 64, 64, 3), np.uint8), np.zeros((1, 64, 64, 3), np.uint8), np.zeros(16000)
            )
        )
