"""The paper's losses at known inputs, at their extremes, and their gradients."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.vgg import cfgs, make_layers

from tfbench.errors import TfbenchError
from tfbench.models import losses
from tfbench.models.avsyncnet import AVSyncNet, bce_sync_loss, sync_probability
from tfbench.models.config import LossWeights, load_config
from tfbench.models.losses import (
    PerceptualLoss,
    adaptive_triplet_loss,
    gan_discriminator_loss,
    gan_generator_loss,
    pixel_loss,
    plain_sync_loss,
    stabilized_sync_loss,
    total_loss,
    triplet_embedding,
)

SATURATED = -math.log(1e-6)  # L_ss at its ratio ceiling 1 - 1e-6


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Small CPU models run faster on one thread than on two contended ones (and reproducibly)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(before)


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def by_hand(x: float, y: float, d: float, eps: float = 1e-6) -> float:
    return -math.log(1 - (abs(x - y) + eps) / (abs(x - y) + abs(y - d) + eps))


# --------------------------------------------------------------------------- stabilized sync loss
@pytest.mark.parametrize(
    ("x", "y", "d"), [(0.5, 0.7, 0.1), (0.9, 0.2, -0.3), (-1.0, 1.0, 0.0), (0.3, 0.31, 0.9)]
)
def test_stabilized_sync_loss_formula(x: float, y: float, d: float) -> None:
    assert float(stabilized_sync_loss(t(x), t(y), t(d))) == pytest.approx(by_hand(x, y, d), rel=1e-5)


def test_stabilized_sync_loss_batch_mean_and_eps() -> None:
    x, y, d = t(0.5, 0.9, 0.0), t(0.7, 0.2, 0.1), t(0.1, -0.3, 0.8)
    expected = sum(by_hand(*v, eps=1e-3) for v in zip(x.tolist(), y.tolist(), d.tolist(), strict=True)) / 3
    assert float(stabilized_sync_loss(x, y, d, eps=1e-3)) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(TfbenchError, match="eps > 0"):
        stabilized_sync_loss(x, y, d, eps=0.0)


def test_stabilized_sync_loss_extremes() -> None:
    # x == y: zero up to eps / |y - d|
    assert float(stabilized_sync_loss(t(0.6), t(0.6), t(0.1))) == pytest.approx(2e-6, abs=1e-6)
    # x == y == d: 0 / 0 without eps, 1 with it; clamped to a finite, saturated value
    for v in (-1.0, 0.0, 0.4, 1.0):
        assert float(stabilized_sync_loss(t(v), t(v), t(v))) == pytest.approx(SATURATED, rel=1e-4)
    # x far from y with y == d: ratio 1, saturated but finite
    assert float(stabilized_sync_loss(t(-1.0), t(1.0), t(1.0))) == pytest.approx(SATURATED, rel=1e-4)
    # huge finite inputs (far outside the cosine range) and float64 extremes stay finite
    big = torch.finfo(torch.float32).max
    assert math.isfinite(float(stabilized_sync_loss(t(big), t(-big), t(big))))
    huge = torch.tensor([1e308, -1e308], dtype=torch.float64)
    assert math.isfinite(float(stabilized_sync_loss(huge, -huge, huge)))
    assert math.isnan(float(stabilized_sync_loss(t(math.nan), t(0.0), t(1.0))))  # NaN is not hidden


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(*[st.floats(-1, 1, width=32)] * 3), min_size=1, max_size=8)
    | st.lists(
        st.tuples(*[st.floats(allow_nan=False, allow_infinity=False, width=32)] * 3), min_size=1, max_size=8
    )
)
def test_stabilized_sync_loss_finite_and_bounded(triples: list[tuple[float, float, float]]) -> None:
    x, y, d = (
        torch.tensor(column, dtype=torch.float32, requires_grad=True) for column in zip(*triples, strict=True)
    )
    loss = stabilized_sync_loss(x, y, d)
    assert math.isfinite(float(loss.detach())) and 0 <= float(loss.detach()) <= SATURATED * 1.001
    loss.backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())


def test_stabilized_sync_loss_pulls_x_toward_y() -> None:
    x = t(0.2, 0.9).requires_grad_()
    y, d = t(0.6, 0.5), t(0.0, -0.2)
    stabilized_sync_loss(x, y, d).backward()
    assert x.grad is not None
    assert bool((torch.sign(x.grad) == torch.sign(x.detach() - y)).all())  # descent moves x toward y
    # the pull is stronger when the GT-reference gap is small (the ratio is relative to |y - d|)
    near = t(0.2).requires_grad_()
    stabilized_sync_loss(near, t(0.6), t(0.5)).backward()
    far = t(0.2).requires_grad_()
    stabilized_sync_loss(far, t(0.6), t(-0.5)).backward()
    assert near.grad is not None and far.grad is not None and abs(float(near.grad)) > abs(float(far.grad))


# --------------------------------------------------------------------------- plain and BCE sync losses
def test_plain_sync_loss() -> None:
    assert float(plain_sync_loss(t(1.0))) == 0.0
    assert float(plain_sync_loss(t(0.5, 0.25))) == pytest.approx((math.log(2) + math.log(4)) / 2, rel=1e-6)
    for cos in (0.0, -0.5, -1.0):
        assert float(plain_sync_loss(t(cos))) == pytest.approx(-math.log(1e-7), rel=1e-5)


def test_bce_sync_loss_and_probability() -> None:
    assert float(sync_probability(t(0.0))) == 0.5
    assert float(sync_probability(t(1.0), logit_scale=5.0)) == pytest.approx(1 / (1 + math.exp(-5)))
    assert float(bce_sync_loss(t(0.0), t(1.0))) == pytest.approx(math.log(2))
    # a confident wrong answer: log(1 + e^5), finite
    assert float(bce_sync_loss(t(-1.0, 1.0), t(1.0, 0.0))) == pytest.approx(math.log1p(math.exp(5)), rel=1e-6)
    assert float(bce_sync_loss(t(1.0), t(1.0), logit_scale=2.0)) == pytest.approx(math.log1p(math.exp(-2)))


# --------------------------------------------------------------------------- adaptive triplet loss
def test_adaptive_triplet_loss_by_hand() -> None:
    e1, e2 = t(1.0, 0.0)[None], t(0.0, 1.0)[None]
    diag = t(1.0, 1.0)[None] / math.sqrt(2)
    # anchor on the GT, reference orthogonal: d_ap 0, d_an 1, margin 0.2 * 1 -> hinge inactive
    assert float(adaptive_triplet_loss(e1, e1, e2)) == 0.0
    # anchor copies the reference: d_ap 1, d_an 0, margin 0.2 -> 1.2
    assert float(adaptive_triplet_loss(e2, e1, e2)) == pytest.approx(1.2)
    # GT == reference: the adaptive margin vanishes (d_ap = d_an, loss 0); a constant margin keeps 0.2
    assert float(adaptive_triplet_loss(diag, e1, e1)) == pytest.approx(0.0, abs=1e-7)
    assert float(adaptive_triplet_loss(diag, e1, e1, margin_form="constant")) == pytest.approx(0.2)
    # margin scales with the GT-reference cosine distance: 1 - cos(e1, diag) = 1 - 1/sqrt(2)
    expected = 1 - (1 - 1 / math.sqrt(2)) + 0.5 * (1 - 1 / math.sqrt(2))  # d_ap 1, d_an and margin from diag
    assert float(adaptive_triplet_loss(e2, e1, diag, base_margin=0.5)) == pytest.approx(expected, rel=1e-6)
    loss = adaptive_triplet_loss(diag, e1, e2, base_margin=0.5)  # d_ap = d_an, margin 0.5
    assert float(loss) == pytest.approx(0.5, rel=1e-6)
    with pytest.raises(TfbenchError, match="margin form"):
        adaptive_triplet_loss(e1, e1, e2, margin_form="linear")  # type: ignore[arg-type]


def test_triplet_embeddings_and_gradient() -> None:
    windows = torch.rand(2, 5, 3, 96, 96, requires_grad=True)
    assert triplet_embedding(windows, "pixel").shape == (2, 5 * 3 * 48 * 96)
    net = AVSyncNet(load_config("tiny").avsyncnet).eval().requires_grad_(False)
    anchor = triplet_embedding(windows, "avsyncnet_visual", net)
    assert anchor.shape == (2, 32)
    gt, ref = (triplet_embedding(torch.rand(2, 5, 3, 96, 96), "avsyncnet_visual", net) for _ in range(2))
    adaptive_triplet_loss(anchor, gt, ref, base_margin=2.0).backward()
    assert windows.grad is not None and float(windows.grad.abs().sum()) > 0  # reaches the generated frames
    with pytest.raises(TfbenchError, match="needs the AVSyncNet"):
        triplet_embedding(windows, "avsyncnet_visual")


# --------------------------------------------------------------------------- reconstruction and GAN losses
def test_pixel_loss() -> None:
    assert float(pixel_loss(torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.25))) == pytest.approx(0.25)


def test_perceptual_loss_random_vgg() -> None:
    loss = PerceptualLoss(pretrained=False)
    assert len(loss.features) == 30 and not any(p.requires_grad for p in loss.parameters())
    target = torch.rand(1, 3, 64, 64)
    generated = torch.rand(1, 3, 64, 64, requires_grad=True)
    assert float(loss(target, target)) == 0.0
    value = loss(generated, target)
    assert float(value.detach()) > 0
    value.backward()
    assert generated.grad is not None and float(generated.grad.abs().sum()) > 0
    assert not loss.train().features.training
    assert (
        len(PerceptualLoss(pretrained=False, layers=("relu1_1", "relu2_1"), layer_weights=(1, 1)).features)
        == 7
    )
    with pytest.raises(TfbenchError, match="relu1_1"):
        PerceptualLoss(pretrained=False, layers=("relu6_1",), layer_weights=(1.0,))


def test_perceptual_loss_loads_torchvision_vgg19_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_layers(cfgs["E"])
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    state = {f"features.{k}": v for k, v in source.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(1)  # the file's classifier is ignored
    torch.save(state, path)
    asked: list[str] = []
    monkeypatch.setattr(losses, "resolve", lambda name, overrides=None: asked.append(name) or path)
    loaded = PerceptualLoss(pretrained=True, layers=("relu1_1",), layer_weights=(1.0,))
    assert asked == ["vgg19"]
    assert torch.equal(loaded.features[0].weight, source[0].weight)


def test_perceptual_loss_pretrained_needs_the_weights_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TFBENCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(TfbenchError, match="vgg19"):
        PerceptualLoss(pretrained=True)


def test_gan_losses() -> None:
    zero, logit = torch.zeros(2, 1, 4, 4), torch.full((2, 1, 4, 4), 2.0)
    assert float(gan_generator_loss(zero)) == pytest.approx(math.log(2))
    assert float(gan_discriminator_loss(zero, zero)) == pytest.approx(2 * math.log(2))
    assert float(gan_generator_loss(logit)) == pytest.approx(math.log1p(math.exp(-2)))
    assert float(gan_generator_loss(logit, "hinge")) == -2.0
    assert float(gan_discriminator_loss(logit, -logit, "hinge")) == 0.0  # both beyond the hinge
    assert float(gan_discriminator_loss(zero, zero, "hinge")) == 2.0
    assert math.isfinite(float(gan_discriminator_loss(torch.full((1,), -1e4), torch.full((1,), 1e4))))
    with pytest.raises(TfbenchError, match="unknown GAN loss"):
        gan_generator_loss(zero, "wgan")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- total
def test_total_loss_weights() -> None:
    parts = {name: torch.tensor(1.0) for name in losses.LOSS_TERMS}
    assert float(total_loss(parts, LossWeights())) == pytest.approx(1 + 10 + 1 + 2 + 0.5)
    weights = load_config("paper").loss.weights
    parts = {"gan": t(0.5)[0], "pix": t(0.1)[0], "per": t(2.0)[0], "sync": t(0.3)[0], "triplet": t(0.4)[0]}
    assert float(total_loss(parts, weights)) == pytest.approx(0.5 + 1.0 + 2.0 + 0.6 + 0.2)
    del parts["triplet"]  # an ablation without L_at
    assert float(total_loss(parts, LossWeights(pix=1.0))) == pytest.approx(0.5 + 0.1 + 2.0 + 0.6)
    with pytest.raises(TfbenchError, match="unknown loss terms"):
        total_loss({"l_ss": t(1.0)[0]}, weights)
    with pytest.raises(TfbenchError, match="at least one"):
        total_loss({}, weights)
