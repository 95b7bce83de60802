"""The model protocol every talking-face generator implements, and the model registry.

A model turns one `GenerationRequest` (the target clip's face crops, its driving audio and an identity
reference, already decoded and cropped by the data pipeline) into generated face crops of the same count.
The runner owns decoding, cropping, paste-back, writing and scoring, so a model only generates. Baselines
and third-party packages register into `MODELS` (entry-point group `tfbench.models`).

A model with settings declares them as a frozen `ModelOptions` dataclass (`options_class`) whose fields are
typed; `parse_options` builds it from `KEY=VALUE` strings (`tfbench run --model-option KEY=VALUE`), refusing
unknown keys and bad values with an error that names the model, and `load_model` hands it to the model's
`load(device, overrides, options)`. Explicit fields instead of `**kwargs`, so a misspelt option is an error,
never silently ignored.
"""

from __future__ import annotations

import difflib
import inspect
import math
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, cast

import numpy as np

from tfbench.errors import TfbenchError
from tfbench.registry import Registry


@dataclass(frozen=True)
class GenerationRequest:
    """Everything a model may use to generate one clip, all at 25 fps and 16 kHz.

    faces: (T, S, S, 3) uint8 RGB crops of the target (pose) video at the model's `crop_size`.
    reference: (R, S, S, 3) uint8 RGB identity-reference crops (R >= 1).
    audio: float32 mono waveform in [-1, 1] that drives the mouth.
    """

    sample_id: str
    faces: np.ndarray
    reference: np.ndarray
    audio: np.ndarray
    fps: float = 25.0
    sample_rate: int = 16000
    metadata: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.faces.ndim != 4 or self.faces.shape[-1] != 3 or self.faces.dtype != np.uint8:
            raise TfbenchError(f"{self.sample_id}: faces must be (T, S, S, 3) uint8, got {self.faces.shape}")
        if self.reference.ndim != 4 or self.reference.shape[1:] != self.faces.shape[1:]:
            raise TfbenchError(
                f"{self.sample_id}: reference crops {self.reference.shape} "
                f"do not match faces {self.faces.shape}"
            )
        if self.audio.ndim != 1:
            raise TfbenchError(f"{self.sample_id}: audio must be mono (1-D), got shape {self.audio.shape}")

    @property
    def n_frames(self) -> int:
        return int(self.faces.shape[0])


@dataclass(frozen=True)
class ModelOptions:
    """Base of a model's options (it has none): subclass it as a frozen dataclass with typed fields.

    Field types: str, int, float, bool, Path, or one of them `| None`; a field without a default is required.
    `field(default=..., metadata={"help": "..."})` gives the text `tfbench models` shows. `__post_init__` may
    check ranges and raise `TfbenchError`.
    """

    def record(self) -> dict[str, str]:
        """Every option as the string that parses back to it: what config.yaml keeps."""
        return {f.name: format_option(getattr(self, f.name)) for f in fields(self)}


OptionsT = TypeVar("OptionsT", bound=ModelOptions)


class TalkingFaceModel(ABC):
    """A generator loaded once per run and called once per clip.

    Subclasses declare `crop_size` (the face crop they take and return) and `weights` (registry names of the
    files `load` needs, shown by `tfbench models`), and implement `load` and `generate`. A model with
    settings sets `options_class` to its `ModelOptions` subclass and takes it as a third parameter of
    `load`: `load(cls, device="cpu", overrides=None, options: MyOptions | None = None)` (None = defaults).
    """

    crop_size: ClassVar[int] = 96
    weights: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    options_class: ClassVar[type[ModelOptions]] = ModelOptions
    label: str = ""
    """What the loaded weights are, where that matters to a reader (e.g. "synthetic-data demo weights");
    recorded in the run's config."""

    @classmethod
    @abstractmethod
    def load(cls, device: str = "cpu", overrides: dict[str, Path] | None = None) -> TalkingFaceModel:
        """Build the model on `device`, reading weight files through the weights registry (or `overrides`)."""

    @abstractmethod
    def generate(self, request: GenerationRequest) -> np.ndarray:
        """Generated (T, S, S, 3) uint8 RGB face crops, one per input frame, S = `crop_size`."""


MODELS: Registry[type[TalkingFaceModel]] = Registry("model", entry_point_group="tfbench.models")


def register_model(
    name: str, aliases: tuple[str, ...] = ()
) -> Callable[[type[TalkingFaceModel]], type[TalkingFaceModel]]:
    """Class decorator: `@register_model("wav2lip")` adds a `TalkingFaceModel` subclass to `MODELS`."""

    def decorate(cls: type[TalkingFaceModel]) -> type[TalkingFaceModel]:
        if not (isinstance(cls, type) and issubclass(cls, TalkingFaceModel)):
            raise TypeError(f"model {name!r} must subclass TalkingFaceModel")
        return MODELS.add(name, cls, aliases)

    return decorate


def check_output(request: GenerationRequest, frames: np.ndarray, crop_size: int) -> np.ndarray:
    """Check a model's output: one uint8 (S, S, 3) crop per input frame, or an error naming the clip."""
    expected = (request.n_frames, crop_size, crop_size, 3)
    if frames.shape != expected or frames.dtype != np.uint8:
        raise TfbenchError(
            f"{request.sample_id}: model returned {frames.dtype} {frames.shape}, expected uint8 {expected}"
        )
    return frames


# ---- model options: typed dataclass fields set from KEY=VALUE strings ------------------------------------

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_SCALARS: tuple[type, ...] = (str, int, float, bool, Path)


@dataclass(frozen=True)
class OptionSpec:
    """One option as `tfbench models` shows it: name, type, default (None when required) and help."""

    name: str
    type_name: str
    default: str | None
    help: str


def format_option(value: object) -> str:
    """An option value as the string `parse_options` reads back ("none", "true"/"false", the path, ...)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _field_type(options_class: type[ModelOptions], name: str, hint: Any) -> tuple[type, bool]:
    """(scalar type, whether None is allowed) of a field; any other annotation is a programming error."""
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0] if len(args) == 1 else hint
    if hint not in _SCALARS:
        raise TypeError(f"{options_class.__name__}.{name}: type {hint!r} is not str/int/float/bool/Path")
    return hint, optional


def _parse_value(owner: str, name: str, text: str, kind: type, optional: bool) -> object:
    """One option value from its string, or a TfbenchError saying what was expected."""
    value = text.strip()
    if optional and value.lower() in ("", "none"):
        return None
    try:
        if kind is bool:
            if value.lower() not in (*_TRUE, *_FALSE):
                raise ValueError
            return value.lower() in _TRUE
        if kind is int:
            return int(value)
        if kind is float:
            number = float(value)
            if not math.isfinite(number):
                raise ValueError
            return number
    except ValueError:
        expected = {bool: "true or false", int: "an integer", float: "a finite number"}[kind]
        raise TfbenchError(f"{owner}: option {name}={text!r} must be {expected}") from None
    if kind is Path:
        return Path(value).expanduser()
    return text


def option_specs(options_class: type[ModelOptions]) -> list[OptionSpec]:
    """The declared options of a `ModelOptions` class, in declaration order."""
    hints = typing.get_type_hints(options_class)
    specs = []
    for f in fields(options_class):
        kind, optional = _field_type(options_class, f.name, hints[f.name])
        default = None
        if f.default is not MISSING:
            default = format_option(f.default)
        elif f.default_factory is not MISSING:
            default = format_option(f.default_factory())
        type_name = kind.__name__ + (" | None" if optional else "")
        specs.append(OptionSpec(f.name, type_name, default, str(f.metadata.get("help", ""))))
    return specs


def parse_options(owner: str, options_class: type[OptionsT], values: Mapping[str, str]) -> OptionsT:
    """Build `options_class` from strings; unknown keys, missing required keys and bad values are errors.

    `owner` names what the options belong to in messages ("model 'shifted'").
    """
    if not (is_dataclass(options_class) and issubclass(options_class, ModelOptions)):
        raise TypeError(f"{owner}: options class {options_class!r} is not a ModelOptions dataclass")
    hints = typing.get_type_hints(options_class)
    declared = {f.name: f for f in fields(options_class)}
    for key in values:
        if key not in declared:
            if not declared:
                raise TfbenchError(f"{owner} takes no options (got {key!r})")
            close = difflib.get_close_matches(key, list(declared), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TfbenchError(f"{owner} has no option {key!r}{hint} (options: {', '.join(declared)})")
    parsed: dict[str, object] = {}
    for name, f in declared.items():
        if name in values:
            kind, optional = _field_type(options_class, name, hints[name])
            parsed[name] = _parse_value(owner, name, values[name], kind, optional)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise TfbenchError(f"{owner} needs option {name!r} (--model-option {name}=...)")
    return options_class(**parsed)


def parse_key_values(items: Iterable[str], what: str = "--model-option") -> dict[str, str]:
    """`["shift=5", "template=python x.py {video}"]` -> a dict; each item splits at its first "="."""
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise TfbenchError(f"{what} {item!r}: expected KEY=VALUE")
        if key in result and result[key] != value:
            raise TfbenchError(f"{what}: {key!r} given twice ({result[key]!r} and {value!r})")
        result[key] = value
    return result


class _LoadWithOptions(Protocol):
    def __call__(
        self, device: str, overrides: dict[str, Path] | None, *, options: ModelOptions
    ) -> TalkingFaceModel: ...


def parse_model_options(name: str, values: Mapping[str, str] | None = None) -> ModelOptions:
    """The options of registered model `name` built from `KEY=VALUE` strings (defaults for the rest)."""
    model = MODELS.get(name)
    return parse_options(f"model {MODELS.canonical(name)!r}", model.options_class, values or {})


def load_model(
    name: str,
    device: str = "cpu",
    overrides: dict[str, Path] | None = None,
    options: ModelOptions | Mapping[str, str] | None = None,
) -> TalkingFaceModel:
    """Load registered model `name` with its options (parsed here when given as strings).

    A model without options is called as `load(device, overrides)`, so models and plugins written before
    options existed keep working; a model with options must accept the `options` keyword.
    """
    model = MODELS.get(name)
    parsed = options if isinstance(options, ModelOptions) else parse_model_options(name, options)
    if type(parsed) is not model.options_class:
        raise TypeError(f"model {name!r} takes {model.options_class.__name__}, got {type(parsed).__name__}")
    if not fields(model.options_class):
        return model.load(device, overrides)
    if "options" not in inspect.signature(model.load).parameters:
        raise TypeError(
            f"model {name!r} has {model.options_class.__name__} but its load() takes no `options`"
        )
    return cast(_LoadWithOptions, model.load)(device, overrides, options=parsed)
