"""Typed configuration of the paper's model (AVSyncNet, G_L, G_S, discriminator, losses), read from YAML.

`paper.yaml` holds the paper's settings where they are known (DESIGN.md section 5) and tfbench's documented
choices where the paper is silent; `tiny.yaml` keeps the same topology at small widths for CPU tests and the
demo. Both ship inside the package (`tfbench/models/configs/`) and load by name: `load_config("tiny")`.

Parsing is strict, because a misspelt option that is silently ignored turns an ablation into a copy of the
baseline: every key must name a field (an unknown key raises `ConfigError` naming the file, the dotted key
and the closest field), every value must have the field's type, and missing keys take the defaults below,
which are the paper's settings. One quirk of YAML is forgiven: PyYAML reads `1e-6` (no dot) as text, so a
float field also accepts a string that parses as a number.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from tfbench.errors import TfbenchError

__all__ = [
    "ABLATION_ROWS",
    "BUNDLED_CONFIGS",
    "DEFAULT_LOGIT_SCALE",
    "AVSyncNetConfig",
    "AblationConfig",
    "ConfigError",
    "DiscriminatorConfig",
    "GeneratorConfig",
    "LossConfig",
    "LossWeights",
    "ModelConfig",
    "StageTrainConfig",
    "TrainConfig",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "save_config",
]

BUNDLED_CONFIGS = ("paper", "tiny", "demo")
DEFAULT_LOGIT_SCALE = 5.0
"""AVSyncNet's sync probability is sigmoid(logit_scale * cosine); see `tfbench.models.avsyncnet`."""
"""Names `load_config` resolves to the YAML files shipped in `tfbench/models/configs/`."""


class ConfigError(TfbenchError):
    """A model configuration file or dict with an unknown key, a wrong type, or an out-of-range value."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True)
class AVSyncNetConfig:
    """AVSyncNet: a ResNet-50-layout visual encoder and a ResNetSE-34 audio encoder into one embedding space.

    visual_size is (height, width) of the stacked lower-half input; the paper reports 112x224, the lower half
    of a 224x224 face. visual_width is the ResNet base width (64 = torchvision's ResNet-50, 2048-d trunk
    output); audio_width the ResNetSE-34 base width (32 = the "thin" ResNet-34 of speaker recognition);
    logit_scale maps the cosine to the sync probability sigmoid(logit_scale * cos) used by BCE.
    """

    embed_dim: int = 512
    visual_size: tuple[int, int] = (112, 224)
    visual_width: int = 64
    visual_layers: tuple[int, int, int, int] = (3, 4, 6, 3)
    audio_width: int = 32
    audio_layers: tuple[int, int, int, int] = (3, 4, 6, 3)
    se_reduction: int = 8
    logit_scale: float = DEFAULT_LOGIT_SCALE

    def __post_init__(self) -> None:
        _require(self.logit_scale > 0, f"avsyncnet.logit_scale must be > 0, got {self.logit_scale}")
        _require(self.embed_dim > 0, f"avsyncnet.embed_dim must be > 0, got {self.embed_dim}")
        _require(
            min(self.visual_size) >= 32, f"avsyncnet.visual_size must be >= 32 px, got {self.visual_size}"
        )
        for name in ("visual_width", "audio_width", "se_reduction"):
            _require(getattr(self, name) > 0, f"avsyncnet.{name} must be > 0, got {getattr(self, name)}")
        for name in ("visual_layers", "audio_layers"):
            _require(min(getattr(self, name)) > 0, f"avsyncnet.{name} must be > 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class GeneratorConfig:
    """G_L and G_S (one architecture): encoder widths double per scale from base_width up to max_width.

    n_scales stride-2 stages take face_size down to face_size / 2**n_scales (96 -> 3 for 5 scales, Wav2Lip's
    bottleneck size); blocks_per_stage residual blocks follow every stage in both encoders and the decoder;
    audio_channels is the width of the trainable projection of the audio embedding at the bottleneck. The
    paper's widths are not recovered: the defaults give about 36M trainable parameters, Wav2Lip's size.
    """

    face_size: int = 96
    base_width: int = 32
    max_width: int = 256
    n_scales: int = 5
    blocks_per_stage: int = 2
    audio_channels: int = 256

    def __post_init__(self) -> None:
        for name in ("base_width", "max_width", "n_scales", "audio_channels"):
            _require(getattr(self, name) > 0, f"generator.{name} must be > 0, got {getattr(self, name)}")
        _require(self.blocks_per_stage >= 0, "generator.blocks_per_stage must be >= 0")
        _require(self.max_width >= self.base_width, "generator.max_width must be >= generator.base_width")
        _require(
            self.face_size > 0 and self.face_size % (2**self.n_scales) == 0,
            f"generator.face_size ({self.face_size}) must be divisible by 2**n_scales ({2**self.n_scales})",
        )


@dataclass(frozen=True)
class DiscriminatorConfig:
    """The visual-quality discriminator: an SN-PatchGAN on the lower half or the whole generated face."""

    region: Literal["lower_half", "full"] = "lower_half"
    width: int = 64
    n_layers: int = 3

    def __post_init__(self) -> None:
        _require(self.width > 0, f"discriminator.width must be > 0, got {self.width}")
        _require(1 <= self.n_layers <= 4, f"discriminator.n_layers must be 1..4, got {self.n_layers}")


@dataclass(frozen=True)
class LossWeights:
    """Weights of the total loss; the paper's L = L_GAN + 10 L_pix + L_per + 2 L_ss + 0.5 L_at.

    `sync` weighs whichever sync loss the ablation selects (stabilized or plain).
    """

    gan: float = 1.0
    pix: float = 10.0
    per: float = 1.0
    sync: float = 2.0
    triplet: float = 0.5

    def __post_init__(self) -> None:
        for name, value in dataclasses.asdict(self).items():
            _require(math.isfinite(value) and value >= 0, f"loss.weights.{name} must be >= 0, got {value}")


@dataclass(frozen=True)
class LossConfig:
    """Loss settings. The adaptive triplet margin's form and embedding space are not recovered from the paper.

    triplet_margin_form "gt_ref_distance": margin = triplet_margin * (1 - cos(GT, reference)); "constant":
    margin = triplet_margin. triplet_space: the embedding the triplet is measured in (see `losses.py`).
    """

    weights: LossWeights = field(default_factory=LossWeights)
    sync_eps: float = 1e-6
    gan: Literal["bce", "hinge"] = "bce"
    triplet_margin: float = 0.2
    triplet_margin_form: Literal["gt_ref_distance", "constant"] = "gt_ref_distance"
    triplet_space: Literal["avsyncnet_visual", "pixel"] = "avsyncnet_visual"
    perceptual_pretrained: bool = True

    def __post_init__(self) -> None:
        _require(self.sync_eps > 0, f"loss.sync_eps must be > 0, got {self.sync_eps}")
        _require(self.triplet_margin >= 0, f"loss.triplet_margin must be >= 0, got {self.triplet_margin}")


@dataclass(frozen=True)
class AblationConfig:
    """The switches that make each row of the paper's ablation a config (see `ABLATION_ROWS`)."""

    use_silent_generator: bool = True
    sync_loss: Literal["plain", "stabilized"] = "stabilized"
    sync_expert: Literal["avsyncnet", "syncnet"] = "avsyncnet"
    use_triplet: bool = True
    audio_encoder: Literal["avsyncnet_frozen", "joint"] = "avsyncnet_frozen"


@dataclass(frozen=True)
class StageTrainConfig:
    """One training stage's length, batch (5-frame windows per step) and Adam learning rate.

    The paper's values are not recovered; the defaults are Wav2Lip's (expert: batch 64, lr 1e-4; generator:
    batch 16, lr 1e-4, the discriminator at the generator's lr), with tfbench's choice of step counts.
    """

    steps: int = 100_000
    batch_size: int = 16
    lr: float = 1e-4

    def __post_init__(self) -> None:
        _require(self.steps >= 0, f"train.<stage>.steps must be >= 0, got {self.steps}")
        _require(self.batch_size > 0, f"train.<stage>.batch_size must be > 0, got {self.batch_size}")
        _require(self.lr > 0, f"train.<stage>.lr must be > 0, got {self.lr}")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of `tfbench train` shared by its stages (see `tfbench.models.training`).

    val_interval / checkpoint_interval: steps between validations / checkpoints (each also happens at the
    last step); val_windows: held-out windows scored per validation; val_fraction: the share of clips held
    out when no validation split is given; num_workers: DataLoader worker processes; amp: mixed precision,
    used on CUDA only; silence_level: a window is silent when every step of its mel window has a mean over
    the 80 bands below this value (normalised mel in [-4, 4]; -2.0 is about -75 dB, see the silent stage);
    cache_clips: clips whose face crops each data process keeps in memory.
    """

    seed: int = 0
    num_workers: int = 8
    val_interval: int = 3000
    checkpoint_interval: int = 3000
    val_windows: int = 512
    val_fraction: float = 0.05
    amp: bool = True
    silence_level: float = -2.0
    cache_clips: int = 256
    avsyncnet: StageTrainConfig = field(default_factory=lambda: StageTrainConfig(200_000, 64, 1e-4))
    silent: StageTrainConfig = field(default_factory=lambda: StageTrainConfig(100_000, 16, 1e-4))
    generator: StageTrainConfig = field(default_factory=lambda: StageTrainConfig(300_000, 16, 1e-4))

    def __post_init__(self) -> None:
        _require(self.seed >= 0, f"train.seed must be >= 0, got {self.seed}")
        _require(self.num_workers >= 0, f"train.num_workers must be >= 0, got {self.num_workers}")
        for name in ("val_interval", "checkpoint_interval", "val_windows", "cache_clips"):
            _require(getattr(self, name) > 0, f"train.{name} must be > 0, got {getattr(self, name)}")
        _require(0 < self.val_fraction < 1, f"train.val_fraction must be in (0, 1), got {self.val_fraction}")
        _require(
            -4.0 < self.silence_level <= 4.0,
            f"train.silence_level must be in (-4, 4], got {self.silence_level}",
        )


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines the networks and the losses of one training setup."""

    name: str = "paper"
    avsyncnet: AVSyncNetConfig = field(default_factory=AVSyncNetConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    ablation: AblationConfig = field(default_factory=AblationConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


ABLATION_ROWS: dict[str, AblationConfig] = {
    "A": AblationConfig(False, "plain", "avsyncnet", False, "joint"),
    "B": AblationConfig(False, "plain", "avsyncnet", False, "avsyncnet_frozen"),
    "D": AblationConfig(True, "plain", "avsyncnet", False, "avsyncnet_frozen"),
    "E": AblationConfig(True, "stabilized", "avsyncnet", False, "avsyncnet_frozen"),
    "G": AblationConfig(True, "stabilized", "avsyncnet", True, "avsyncnet_frozen"),
}
"""The paper's ablation rows that can be reconstructed. A = base model with the plain sync loss, D = + G_S
with the pretrained (frozen AVSyncNet) audio encoder, E = D with L_ss, G = E + L_at (the full model). A's
jointly trained audio encoder and B (= A with the frozen encoder) are inferred from the audio-encoder
ablation, whose frozen-encoder LMD 2.325 is the starting point of "adding G_S"; C (Wav2Vec2) and F are not
recovered."""


# --------------------------------------------------------------------------- strict dict -> dataclass
def _convert(value: Any, hint: Any, key: str, source: str) -> Any:
    """`value` checked against and converted to the type `hint`; a mismatch names `source` and `key`."""
    where = f"{source}: {key}"
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        _require(isinstance(value, Mapping), f"{where} must be a mapping, got {type(value).__name__}")
        return _build(hint, value, source, prefix=f"{key}.")
    if origin is Literal:
        choices = get_args(hint)
        _require(value in choices, f"{where} must be one of {list(choices)}, got {value!r}")
        return value
    if origin is tuple:
        args = get_args(hint)
        _require(isinstance(value, list | tuple), f"{where} must be a list, got {type(value).__name__}")
        n = len(value) if args[-1] is Ellipsis else len(args)
        _require(len(value) == n, f"{where} must have {n} items, got {len(value)}")
        items = args[:1] * n if args[-1] is Ellipsis else args
        return tuple(
            _convert(v, t, f"{key}[{i}]", source) for i, (v, t) in enumerate(zip(value, items, strict=True))
        )
    if origin in (Union, types.UnionType):
        raise TypeError(f"config field {key}: union types are not supported")
    if hint is bool:
        _require(isinstance(value, bool), f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        _require(
            isinstance(value, int) and not isinstance(value, bool),
            f"{where} must be an integer, got {value!r}",
        )
        return value
    if hint is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where} must be a number, got {value!r}") from None
        _require(
            isinstance(value, int | float) and not isinstance(value, bool),
            f"{where} must be a number, got {value!r}",
        )
        return float(value)
    if hint is str:
        _require(isinstance(value, str), f"{where} must be a string, got {value!r}")
        return value
    raise TypeError(f"config field {key}: unsupported type {hint!r}")


def _build(cls: Any, data: Mapping[str, Any], source: str, prefix: str = "") -> Any:
    """An instance of dataclass `cls` from `data`; unknown keys and bad values raise `ConfigError`."""
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {prefix + close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{source}: unknown key {prefix + str(key)!r}{hint}; known keys here: {', '.join(names)}"
            )
    kwargs = {key: _convert(value, hints[key], f"{prefix}{key}", source) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def config_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> ModelConfig:
    """A `ModelConfig` from a nested dict (YAML's shape); `source` names the origin in error messages."""
    _require(isinstance(data, Mapping), f"{source}: the top level must be a mapping")
    config: ModelConfig = _build(ModelConfig, data, source)
    return config


def config_to_dict(config: ModelConfig) -> dict[str, Any]:
    """The nested plain dict of `config` (tuples as lists), ready for YAML; `config_from_dict` inverts it."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return [plain(v) for v in value] if isinstance(value, tuple | list) else value

    result: dict[str, Any] = plain(dataclasses.asdict(config))
    return result


def load_config(source: str | Path) -> ModelConfig:
    """The config of a bundled name (`"paper"`, `"tiny"`) or of a YAML file path."""
    if isinstance(source, str) and source in BUNDLED_CONFIGS:
        resource = resources.files("tfbench.models").joinpath("configs", f"{source}.yaml")
        text, label = resource.read_text(encoding="utf-8"), f"tfbench/models/configs/{source}.yaml"
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            bundled = ", ".join(BUNDLED_CONFIGS)
            raise ConfigError(f"model config {str(source)!r}: no such file (bundled configs: {bundled})")
        text, label = path.read_text(encoding="utf-8"), str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: not valid YAML ({exc})") from None
    return config_from_dict(data if data is not None else {}, source=label)


def save_config(config: ModelConfig, path: str | Path) -> Path:
    """Write `config` as YAML to `path` (key order as in the dataclasses); returns the path."""
    out = Path(path)
    out.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False), encoding="utf-8")
    return out
