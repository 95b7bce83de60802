"""The paper's networks (AVSyncNet, G_L / G_S, discriminator) and their typed YAML configs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st

from tfbench.audio import wav2lip_mel
from tfbench.errors import TfbenchError
from tfbench.models.avsyncnet import AVSyncNet, sample_sync_pairs, visual_input
from tfbench.models.config import (
    ABLATION_ROWS,
    ConfigError,
    ModelConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)
from tfbench.models.discriminator import PatchDiscriminator
from tfbench.models.generator import build_generator, mask_lower_half, silent_mel

TINY = load_config("tiny")
PAPER = load_config("paper")


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Small CPU models run faster on one thread than on two contended ones (and reproducibly)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(before)


def n_params(module: torch.nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


# --------------------------------------------------------------------------- AVSyncNet
def test_paper_avsyncnet_is_resnet50_and_resnetse34() -> None:
    net = AVSyncNet(PAPER.avsyncnet).eval()
    # The visual trunk is torchvision's ResNet-50 (names and shapes), conv1 widened to 15 input channels.
    reference = torchvision.models.resnet50(weights=None).state_dict()
    mine = net.visual_encoder.state_dict()
    trunk = {k for k in reference if not k.startswith("fc.")}
    assert trunk == {k for k in mine if not k.startswith("fc.")}
    assert [k for k in trunk if reference[k].shape != mine[k].shape] == ["conv1.weight"]
    assert mine["conv1.weight"].shape == (64, 15, 7, 7)
    blocks = [len(s) for s in net.audio_encoder.stages]
    assert blocks == [3, 4, 6, 3] and net.audio_encoder.stages[0][0].conv1.out_channels == 32
    with torch.no_grad():
        video, audio = net(torch.rand(2, 5, 3, 112, 224), torch.rand(2, 1, 80, 16) * 8 - 4)
    assert video.shape == audio.shape == (2, 512)
    torch.testing.assert_close(video.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(audio.norm(dim=-1), torch.ones(2))
    assert 31_000_000 < n_params(net) < 33_000_000


def test_tiny_avsyncnet_shapes_and_inputs() -> None:
    net = AVSyncNet(TINY.avsyncnet).eval()
    frames, mel = torch.rand(3, 5, 3, 48, 96), torch.rand(3, 1, 80, 16) * 8 - 4
    with torch.no_grad():
        video, audio = net(frames, mel)
        stacked = net.embed_video(frames.flatten(1, 2))
        sim = net.similarity(frames, mel)
        assert torch.equal(net.embed_audio(mel[:, 0]), audio)  # (B, 80, 16) works too
    assert video.shape == audio.shape == (3, TINY.avsyncnet.embed_dim)
    torch.testing.assert_close(video.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(stacked, video)  # (B, 5, 3, H, W) and (B, 15, H, W) are the same input
    assert sim.shape == (3,) and bool(((sim >= -1) & (sim <= 1)).all())
    with pytest.raises(TfbenchError, match="48x96"):
        net.embed_video(torch.rand(1, 5, 3, 96, 96))
    with pytest.raises(TfbenchError, match="mel windows"):
        net.embed_audio(torch.rand(1, 1, 80, 20))


def test_visual_input_takes_the_lower_half() -> None:
    faces = torch.rand(2, 5, 3, 96, 96)
    same = visual_input(faces, (48, 96))
    assert torch.equal(same, faces[..., 48:, :].flatten(1, 2))
    assert visual_input(faces, (112, 224)).shape == (2, 15, 112, 224)
    faces[..., :48, :] = 7.0  # the upper half never reaches the expert
    assert torch.equal(visual_input(faces, (48, 96)), same)


def test_sync_pairs_positive_aligned_negative_apart() -> None:
    pairs = sample_sync_pairs(30, 200, np.random.default_rng(0))
    assert sum(p.label for p in pairs) == 100
    for p in pairs:
        assert 0 <= p.video_start <= 25 and 0 <= p.audio_start <= 25
        if p.label:
            assert p.audio_start == p.video_start
        else:
            assert abs(p.audio_start - p.video_start) >= 5
    assert pairs == sample_sync_pairs(30, 200, np.random.default_rng(0))
    offsets = {p.audio_start - p.video_start for p in pairs if not p.label}
    assert len(offsets) > 10  # negatives spread over many offsets, both signs
    assert min(offsets) < 0 < max(offsets)


@settings(max_examples=40, deadline=None)
@given(
    n_frames=st.integers(10, 60), n_pairs=st.integers(0, 12), frac=st.floats(0, 1), seed=st.integers(0, 99)
)
def test_sync_pairs_always_valid(n_frames: int, n_pairs: int, frac: float, seed: int) -> None:
    for p in sample_sync_pairs(n_frames, n_pairs, np.random.default_rng(seed), positive_fraction=frac):
        assert min(p.video_start, p.audio_start) >= 0 and max(p.video_start, p.audio_start) + 5 <= n_frames
        assert (p.label == 1) == (p.video_start == p.audio_start)
        assert p.label == 1 or abs(p.video_start - p.audio_start) >= 5


def test_sync_pairs_reject_short_clips_and_overlap() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(TfbenchError, match="too short"):
        sample_sync_pairs(9, 2, rng)
    assert len(sample_sync_pairs(5, 3, rng, positive_fraction=1.0)) == 3  # positives fit a 5-frame clip
    with pytest.raises(TfbenchError, match="overlap"):
        sample_sync_pairs(30, 2, rng, min_offset=3)


def _toy_batch(n: int, seed: int, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sync pairs of a toy 'speaker': per-frame mouth openings s_t in {0, 1} drive both a bright band in the
    frames and the energy of the mel steps of that frame (16 steps span 5 frames at 25 fps)."""
    g, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    pairs = [sample_sync_pairs(20, 1, rng, positive_fraction=float(i % 2 == 0))[0] for i in range(n)]
    s = (torch.rand(n, 20, generator=g) > 0.5).float()
    video_s = s.gather(1, torch.tensor([p.video_start for p in pairs])[:, None] + torch.arange(5))
    audio_s = s.gather(1, torch.tensor([p.audio_start for p in pairs])[:, None] + torch.arange(5))
    h, w = size
    rows = (torch.arange(h) - h / 2).abs()
    frames = (rows[None, None] < video_s[..., None] * h / 2).float()  # (n, 5, h)
    frames = frames[:, :, None, :, None].expand(n, 5, 3, h, w)
    profile = torch.exp(-(((torch.arange(80) - 30) / 15) ** 2))
    mel = -4 + 7 * audio_s[:, (torch.arange(16) * 25) // 80][:, None, :] * profile[None, :, None]
    mel = mel + 0.1 * torch.randn(mel.shape, generator=g)
    return frames, mel[:, None], torch.tensor([float(p.label) for p in pairs])


def test_tiny_avsyncnet_learns_toy_sync() -> None:
    """60 steps separate in-sync from shifted pairs on held-out toy clips (chance is 0.5, and the untrained
    net is checked to be near it, so this fails when the encoders or the loss do not learn)."""
    size = (32, 64)
    net = AVSyncNet(dataclasses.replace(TINY.avsyncnet, visual_size=size))

    def accuracy() -> float:
        net.eval()
        frames, mel, label = _toy_batch(200, 999, size)
        with torch.no_grad():
            predicted = (net.sync_probability(net.similarity(frames, mel)) > 0.5).float()
        net.train()
        return float((predicted == label).float().mean())

    assert accuracy() < 0.7
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    for step in range(60):
        frames, mel, label = _toy_batch(32, step, size)
        loss = net.loss(net.similarity(frames, mel), label)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert accuracy() > 0.8


# --------------------------------------------------------------------------- generators
@pytest.fixture(scope="module")
def tiny_expert() -> AVSyncNet:
    return AVSyncNet(TINY.avsyncnet)


def test_lip_generator_shapes_and_frozen_audio(tiny_expert: AVSyncNet) -> None:
    g = build_generator(TINY, tiny_expert).train()
    audio = g.audio_encoder
    assert audio is not tiny_expert.audio_encoder  # a private copy: the expert's own encoder is untouched
    assert all(p.requires_grad for p in tiny_expert.audio_encoder.parameters())
    assert not any(p.requires_grad for p in audio.parameters())
    assert not audio.training and g.training and g.identity_encoder.training
    stats = {k: v.clone() for k, v in audio.state_dict().items()}
    identity, pose = torch.rand(2, 5, 3, 96, 96), torch.rand(2, 5, 3, 96, 96)
    mel = torch.rand(2, 5, 1, 80, 16) * 8 - 4
    out = g(identity, pose, mel)
    assert out.shape == (2, 5, 3, 96, 96) and 0 <= float(out.detach().min()) <= float(out.detach().max()) <= 1
    (out - pose).abs().mean().backward()
    assert all(p.grad is None for p in audio.parameters())
    assert all(torch.equal(v, stats[k]) for k, v in audio.state_dict().items())  # BN statistics unchanged
    for part in (g.identity_encoder, g.pose_encoder, g.audio_projection, g.bottleneck, g.decoder, g.head):
        grads = [p.grad for p in part.parameters()]
        assert all(gr is not None for gr in grads) and any(float(gr.abs().sum()) > 0 for gr in grads)
    trainable = {id(p) for p in g.trainable_parameters()}
    assert trainable and not trainable & {id(p) for p in audio.parameters()}
    single = g(identity[:, 0], pose[:, 0], mel[:, 0])  # (N, 3, S, S) frames work without a time axis
    assert single.shape == (2, 3, 96, 96)


def test_generator_masks_pose_and_listens_to_audio(tiny_expert: AVSyncNet) -> None:
    g = build_generator(TINY, tiny_expert).eval()
    identity, pose = torch.rand(1, 5, 3, 96, 96), torch.rand(1, 5, 3, 96, 96)
    mel = torch.rand(1, 5, 1, 80, 16) * 8 - 4
    with torch.no_grad():
        out = g(identity, pose, mel)
        other_mouth = pose.clone()
        other_mouth[..., 48:, :] = torch.rand_like(other_mouth[..., 48:, :])
        assert torch.equal(g(identity, other_mouth, mel), out)  # the GT lower half cannot leak in
        assert torch.equal(g(identity, mask_lower_half(pose), mel), out)
        g.train()  # batch statistics: at step 0 the running ones let activations saturate the sigmoid
        change = (g(identity, pose, mel) - g(identity, pose, silent_mel((1, 5)))).abs().max()
        assert float(change) > 1e-3  # the audio reaches the output
    with pytest.raises(TfbenchError, match="mel must be"):
        g(identity, pose, mel[:, :4])


def test_silent_generator_and_silent_mel(tiny_expert: AVSyncNet) -> None:
    silence = silent_mel((2, 5))
    assert silence.shape == (2, 5, 1, 80, 16) and bool((silence == -4).all())
    window = wav2lip_mel(np.zeros(16000, dtype=np.float32))[:, :16]
    assert np.array_equal(window, silence[0, 0, 0].numpy())  # the mel of digital silence
    g_s = build_generator(TINY, tiny_expert).eval()
    reference = torch.rand(1, 5, 3, 96, 96)
    with torch.no_grad():
        closed = g_s.close_lips(reference)
    assert closed.shape == reference.shape and float(closed.min()) >= 0 and float(closed.max()) <= 1


def test_joint_audio_encoder_trains_and_frozen_needs_expert() -> None:
    joint = dataclasses.replace(TINY, ablation=dataclasses.replace(TINY.ablation, audio_encoder="joint"))
    g = build_generator(joint, None).train()
    assert g.audio_encoder.training
    out = g(torch.rand(1, 3, 96, 96), torch.rand(1, 3, 96, 96), torch.rand(1, 1, 80, 16))
    out.mean().backward()
    assert all(p.grad is not None for p in g.audio_encoder.parameters())
    with pytest.raises(TfbenchError, match="needs the trained AVSyncNet"):
        build_generator(TINY, None)


def test_paper_generator_and_discriminator_shapes() -> None:
    expert_audio = AVSyncNet(dataclasses.replace(PAPER.avsyncnet, visual_layers=(1, 1, 1, 1)))
    g = build_generator(PAPER, expert_audio).eval()
    assert 34_000_000 < n_params(g, trainable=True) < 37_000_000
    with torch.no_grad():
        out = g.close_lips(torch.rand(1, 5, 3, 96, 96))
    assert out.shape == (1, 5, 3, 96, 96)
    d = PatchDiscriminator(PAPER.discriminator)
    assert d(out).shape == (5, 1, 4, 10)  # 70x70-PatchGAN logits over the 48x96 lower half


def test_discriminator_regions_and_gradient() -> None:
    lower = PatchDiscriminator(TINY.discriminator)
    full = PatchDiscriminator(dataclasses.replace(TINY.discriminator, region="full"))
    faces = torch.rand(2, 5, 3, 96, 96, requires_grad=True)
    assert full(faces).shape == (10, 1, 10, 10)
    logits = lower(faces)
    assert logits.shape == (10, 1, 4, 10)
    logits.sum().backward()
    assert faces.grad is not None
    assert float(faces.grad[..., 48:, :].abs().sum()) > 0 and float(faces.grad[..., :48, :].abs().sum()) == 0


# --------------------------------------------------------------------------- configs
def test_bundled_configs_round_trip(tmp_path: Path) -> None:
    assert dataclasses.replace(ModelConfig(), name="paper") == PAPER  # the dataclass defaults are the paper's
    for config in (TINY, PAPER):
        assert config_from_dict(config_to_dict(config)) == config
        assert load_config(save_config(config, tmp_path / f"{config.name}.yaml")) == config
    assert dataclasses.astuple(PAPER.loss.weights) == (1.0, 10.0, 1.0, 2.0, 0.5)  # L_GAN, pix, per, ss, at
    assert TINY.loss.weights == PAPER.loss.weights
    assert ABLATION_ROWS["G"] == PAPER.ablation and ABLATION_ROWS["A"].sync_loss == "plain"


def test_demo_config_is_tiny_without_perceptual_and_with_a_light_sync_term() -> None:
    """demo.yaml (the packaged demo weights' config) keeps tiny.yaml's networks and switches; it differs only
    in the loss weights its header explains and in CPU-sized training settings."""
    demo = load_config("demo")
    assert (demo.avsyncnet, demo.generator, demo.discriminator) == (
        TINY.avsyncnet,
        TINY.generator,
        TINY.discriminator,
    )
    assert demo.ablation == TINY.ablation
    assert demo.loss == dataclasses.replace(
        TINY.loss, weights=dataclasses.replace(TINY.loss.weights, gan=0.0, per=0.0, sync=0.2)
    )


def test_unknown_and_bad_keys_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("generator:\n  base_widht: 16\n")
    with pytest.raises(
        ConfigError, match=r"mine\.yaml: unknown key 'generator\.base_widht'.*'generator\.base_width'"
    ):
        load_config(path)
    path.write_text("learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="unknown key 'learning_rate'"):
        load_config(path)
    bad = {
        "generator: {base_width: '16'}": "generator.base_width must be an integer",
        "ablation: {use_triplet: 1}": "ablation.use_triplet must be true or false",
        "ablation: {sync_loss: ss}": r"ablation.sync_loss must be one of \['plain', 'stabilized'\]",
        "avsyncnet: {visual_size: [112]}": "avsyncnet.visual_size must have 2 items",
        "generator: {face_size: 100}": "divisible by 2\\*\\*n_scales",
        "loss: {weights: {pix: -1}}": "loss.weights.pix must be >= 0",
        "generator: 3": "generator must be a mapping",
    }
    for text, message in bad.items():
        path.write_text(text + "\n")
        with pytest.raises(ConfigError, match=message):
            load_config(path)
    path.write_text("loss: {sync_eps: 1e-5}\n")  # YAML 1.1 reads 1e-5 as text; accepted as a number
    assert load_config(path).loss.sync_eps == 1e-5
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.yaml")
