"""Training checkpoints: one file per stage run, written atomically, holding everything needed to resume.

A checkpoint (`OUT/last.pt`, a torch file readable with `weights_only=True`, so loading it never runs code) is
a dict:

    format       "tfbench-train/1"
    stage        "avsyncnet" | "silent" | "generator"
    config       the full `ModelConfig` as a plain dict (`config_to_dict`), train section included
    step         optimiser steps done
    metrics      {"latest": the last validation, "history": [{"step": s, ...}, ...], "train": last losses}
    models       {name: state_dict}: every network of the stage, frozen ones included (the generator stage
                 keeps G_L, the discriminator, G_S and AVSyncNet), so a checkpoint is complete on its own
    optimizers   {name: Adam state_dict};  scalers: {name: GradScaler state} (float16 AMP only)
    rng          {"torch": CPU generator state, "cuda": [per-device states]}
    sources      {"avsyncnet": path, "silent": path}: the checkpoints this stage started from
    data         what was trained on (dataset, split, clip counts, validation clip ids, face settings)

It is written to a temporary sibling and renamed into place (`tfbench.fileio.atomic_path`), so a run killed
while saving leaves the previous checkpoint whole. A run resumes from it only when the config agrees in
every setting that changes results (`results_settings`); step counts, workers, intervals may change.

`export_checkpoint` (`tfbench train export`) makes an inference-only copy: the same dict with only the
networks inference needs (`INFERENCE_NETWORKS`), no optimiser, scaler or RNG state, optionally float16
tensors, plus `label` (e.g. "synthetic-data demo weights") and `exported_from` (the source file's name,
step and sha256). The loaders put `label` on the networks they return (their `label` attribute; "" for a
training checkpoint), so a model or scorer built from a demo file says so. An export cannot be resumed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tfbench.errors import TfbenchError
from tfbench.fileio import atomic_path
from tfbench.models.avsyncnet import AudioEncoder, AVSyncNet
from tfbench.models.config import ConfigError, ModelConfig, config_from_dict, config_to_dict
from tfbench.models.generator import Generator

__all__ = [
    "CHECKPOINT_NAME",
    "FORMAT",
    "INFERENCE_NETWORKS",
    "STAGE_NAMES",
    "checkpoint_config",
    "checkpoint_label",
    "export_checkpoint",
    "load_avsyncnet",
    "load_checkpoint",
    "load_generators",
    "load_state",
    "make_generator",
    "results_settings",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]

FORMAT = "tfbench-train/1"
CHECKPOINT_NAME = "last.pt"
"""The file a stage writes in its output folder and resumes from."""
STAGE_NAMES = ("avsyncnet", "silent", "generator")
INFERENCE_NETWORKS = {
    "avsyncnet": ("avsyncnet",),
    "silent": ("silent",),
    "generator": ("generator", "silent"),
}
"""The networks of each stage's checkpoint that inference uses, all that an export keeps."""
_FREE_TRAIN_KEYS = ("num_workers", "val_interval", "checkpoint_interval", "val_windows", "cache_clips")


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write `payload` with torch.save to `path` atomically (a temporary sibling, then a rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(dict(payload), tmp)
    return path


def load_checkpoint(path: str | Path, stage: str | None = None) -> dict[str, Any]:
    """The checkpoint dict at `path` (read onto the CPU, weights_only), checked to be of `stage` if given."""
    path = Path(path)
    if not path.is_file():
        raise TfbenchError(f"training checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip, pickle and torch raise many unrelated types for a wrong file
        raise TfbenchError(
            f"{path} is not a readable tfbench training checkpoint ({type(exc).__name__})"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TfbenchError(f"{path} is not a tfbench training checkpoint (no format {FORMAT!r} inside)")
    if stage is not None and data.get("stage") != stage:
        raise TfbenchError(
            f"{path} is a checkpoint of stage {data.get('stage')!r}, expected {stage!r} "
            f"(made by `tfbench train {stage}`)"
        )
    return data


def checkpoint_label(data: Mapping[str, Any]) -> str:
    """The label an exported checkpoint carries ("" for a training checkpoint)."""
    return str(data.get("label", ""))


def export_checkpoint(source: str | Path, dest: str | Path, label: str, half: bool = False) -> Path:
    """Write an inference-only copy of training checkpoint `source` to `dest` (see the module docstring):
    the stage's `INFERENCE_NETWORKS` (float16 floating tensors if `half`), config, step, metrics, data and
    sources, with `label`; no optimiser, scaler or RNG state. Returns `dest`."""
    from tfbench.weights import sha256_file  # the foundation layer; imported here to keep start-up light

    data = load_checkpoint(source)
    if not label.strip():
        raise TfbenchError("an exported checkpoint needs a non-empty label (say what the weights are)")
    stage = str(data["stage"])
    models = data.get("models", {})
    kept = [name for name in INFERENCE_NETWORKS[stage] if name in models]

    def convert(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.half() if half and tensor.is_floating_point() else tensor

    payload = {key: data[key] for key in ("format", "stage", "config", "step", "metrics", "sources", "data")}
    payload["models"] = {name: {k: convert(v) for k, v in models[name].items()} for name in kept}
    payload["label"] = label.strip()
    payload["exported_from"] = {
        "file": Path(source).name,
        "step": data["step"],
        "sha256": sha256_file(Path(source)),
    }
    return save_checkpoint(dest, payload)


def checkpoint_config(data: Mapping[str, Any], source: str | Path) -> ModelConfig:
    """The `ModelConfig` stored in a checkpoint dict."""
    try:
        return config_from_dict(data["config"], source=f"{source} (stored config)")
    except (KeyError, ConfigError) as exc:
        raise TfbenchError(f"{source}: its stored config cannot be read ({exc})") from None


def results_settings(config: ModelConfig) -> dict[str, Any]:
    """The config as a dict without the settings a resumed run may change (steps, workers, intervals)."""
    data = config_to_dict(config)
    train = data["train"]
    for key in _FREE_TRAIN_KEYS:
        train.pop(key)
    for stage in STAGE_NAMES:
        train[stage].pop("steps")
    return data


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [f"{prefix.rstrip('.')}: {a!r} -> {b!r}"]


def check_resumable(data: Mapping[str, Any], config: ModelConfig, path: Path) -> None:
    """Refuse to resume a checkpoint whose config differs from `config` in a setting that changes results."""
    stored = results_settings(checkpoint_config(data, path))
    if diffs := _differences(stored, results_settings(config)):
        raise TfbenchError(
            f"{path} was trained with another config ({'; '.join(diffs[:3])}); "
            f"use the same config to resume, or another --out folder to start afresh"
        )


def rng_state() -> dict[str, Any]:
    """The torch random generator states (CPU and every CUDA device)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what `rng_state` returned (CUDA states only where this machine has as many devices)."""
    torch.set_rng_state(state["torch"])
    cuda = list(state.get("cuda", []))
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def load_state(module: nn.Module, state: Mapping[str, torch.Tensor], source: str, name: str) -> None:
    """Load `state` into `module` strictly; a mismatch is a one-line error naming the file and network."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise TfbenchError(f"{source}: its {name} does not fit this config ({first})") from None


def _models(data: Mapping[str, Any], name: str, source: str | Path) -> Mapping[str, torch.Tensor]:
    models = data.get("models", {})
    if name not in models:
        raise TfbenchError(f"{source}: no {name!r} network inside (it holds {sorted(models)})")
    state: Mapping[str, torch.Tensor] = models[name]
    return state


def make_generator(config: ModelConfig) -> Generator:
    """G_L / G_S of `config` with a freshly initialised audio encoder of AVSyncNet's architecture, frozen
    unless `ablation.audio_encoder` is "joint"; load a state_dict into it or copy the trained encoder in."""
    frozen = config.ablation.audio_encoder != "joint"
    return Generator(config.generator, AudioEncoder(config.avsyncnet), freeze_audio=frozen)


def copy_audio_encoder(generator: Generator, avsyncnet: AVSyncNet) -> None:
    """Give `generator` AVSyncNet's trained audio encoder (what `build_generator` does with a deep copy)."""
    generator.audio_encoder.load_state_dict(copy.deepcopy(avsyncnet.audio_encoder.state_dict()))


def load_avsyncnet(path: str | Path, device: str | torch.device = "cpu") -> tuple[ModelConfig, AVSyncNet]:
    """The AVSyncNet of a checkpoint of any stage, with its config, in eval mode."""
    data = load_checkpoint(path)
    config = checkpoint_config(data, path)
    net = AVSyncNet(config.avsyncnet)
    load_state(net, _models(data, "avsyncnet", path), str(path), "AVSyncNet")
    net.label = checkpoint_label(data)
    return config, net.to(device).eval()


def load_generators(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[ModelConfig, Generator, Generator | None]:
    """(config, G_L, G_S or None) of a `generator` stage checkpoint, in eval mode; G_S is absent when the
    config's ablation trains without the silent generator."""
    data = load_checkpoint(path, "generator")
    config = checkpoint_config(data, path)
    lip = make_generator(config)
    load_state(lip, _models(data, "generator", path), str(path), "generator G_L")
    lip.label = checkpoint_label(data)
    silent = None
    if config.ablation.use_silent_generator:
        silent = make_generator(config)
        load_state(silent, _models(data, "silent", path), str(path), "silent generator G_S")
        silent.label = lip.label
        silent = silent.to(device).eval()
    return config, lip.to(device).eval(), silent
