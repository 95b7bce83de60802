"""The weights table (`tfbench.weights_table`) and files shipped inside a package (`package://` sources): the
synthetic-data demo checkpoints resolve offline, in place, sha256-checked. Nothing touches the network."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tfbench import weights
from tfbench.errors import WeightsError
from tfbench.registry import Registry
from tfbench.weights import WeightSpec

PAYLOAD = b"a packaged checkpoint" * 100
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private $TFBENCH_HOME, offline: nothing here may need a download."""
    monkeypatch.setenv("TFBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TFBENCH_OFFLINE", "1")
    return tmp_path / "home"


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Registry[WeightSpec]:
    """A fresh registry standing in for `weights.WEIGHTS` (the real entries stay untouched)."""
    fresh: Registry[WeightSpec] = Registry("weights entry")
    monkeypatch.setattr(weights, "WEIGHTS", fresh)
    return fresh


def add(registry: Registry[WeightSpec], source: str, **kw: Any) -> WeightSpec:
    fields: dict[str, Any] = {"description": "d", "filename": "toy.pth", "format": "f", "licence": "MIT"}
    fields.update({"sha256": PAYLOAD_SHA, **kw})
    return registry.add("toy", WeightSpec(name="toy", source=source, **fields))


def files_in(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")) if directory.exists() else []


def test_package_sources_are_validated() -> None:
    good: dict[str, Any] = {
        "name": "x",
        "description": "d",
        "filename": "x.pth",
        "format": "f",
        "licence": "",
    }
    assert WeightSpec(**good, source="package://tfbench/models/demo/x.pth", sha256=PAYLOAD_SHA).packaged
    for bad, problem in (
        ({"source": "package://tfbench/models/demo/x.pth"}, "needs a full sha256"),
        ({"source": "package://tfbench/models/demo/y.pth", "sha256": PAYLOAD_SHA}, "end with the filename"),
        ({"source": "package:///x.pth", "sha256": PAYLOAD_SHA}, "source must be"),
    ):
        with pytest.raises(ValueError, match=f"weights entry 'x': .*{problem}"):
            WeightSpec(**{**good, **bad})


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable package `tfbench_toy_pkg` holding data/toy.pth (PAYLOAD); returns the file."""
    folder = tmp_path / "site" / "tfbench_toy_pkg"
    (folder / "data").mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    (folder / "data" / "toy.pth").write_bytes(PAYLOAD)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return folder / "data" / "toy.pth"


def test_a_packaged_file_resolves_in_place_offline(
    registry: Registry[WeightSpec], package: Path, home: Path
) -> None:
    add(registry, "package://tfbench_toy_pkg/data/toy.pth", size=len(PAYLOAD))
    assert weights.expected_path("toy") == package
    assert weights.resolve("toy") == package and weights.fetch("toy") == package
    result = weights.verify("toy")
    assert result.ok and result.pinned and result.sha256 == PAYLOAD_SHA
    assert files_in(home) == []  # nothing copied, downloaded or pinned
    package.write_bytes(PAYLOAD[:-1] + b"X")  # an edited installation
    with pytest.raises(WeightsError, match=r"packaged file .*toy\.pth was changed \(expected sha256"):
        weights.resolve("toy")
    with pytest.raises(WeightsError, match=r"never downloaded; the copy at .* does not match"):
        weights.fetch("toy")
    assert not weights.verify("toy").ok
    package.unlink()
    with pytest.raises(WeightsError, match=r"ships inside the tfbench_toy_pkg package.*reinstall it"):
        weights.resolve("toy")


def test_a_packaged_file_of_a_missing_package_is_a_clear_error(registry: Registry[WeightSpec]) -> None:
    add(registry, "package://tfbench_no_such_pkg/toy.pth")
    with pytest.raises(WeightsError, match=r"package 'tfbench_no_such_pkg' of package://.* is not installed"):
        weights.resolve("toy")


def test_demo_weights_ship_with_tfbench() -> None:
    """The synthetic-data demo checkpoints resolve offline to the installed files, their sha256 checked."""
    for name in ("ours_demo", "avsyncnet_demo"):
        s = weights.spec(name)
        assert s.packaged and s.sha256 and "synthetic-data demo weights" in s.description
        path = weights.resolve(name)
        assert path.parent.name == "demo" and path.parent.parent.name == "models"
        assert weights.verify(name).ok and path.stat().st_size == s.size
    total = sum(weights.resolve(name).stat().st_size for name in ("ours_demo", "avsyncnet_demo"))
    assert total <= 10 * 2**20


# ------------------------------------------------------------------------------------------ the real table


def test_every_real_entry_is_complete() -> None:
    required = {
        "syncnet_v2", "s3fd", "s3fd_fan", "wav2lip", "wav2lip_gan", "wav2lip_syncnet",
        "fid_inception", "lpips_alex", "lrs2_pairs", "lrs3_pairs", "lrw_pairs", "ours", "avsyncnet",
        "ours_demo", "avsyncnet_demo",
    }  # fmt: skip
    assert required <= set(weights.WEIGHTS.names())
    paths = set()
    for name, s in weights.WEIGHTS.items():
        assert s.name == name and s.source and s.filename and s.format and s.licence and s.description
        assert s.sha256 or s.sha256_prefix or s.manual or s.source.startswith("gdrive:"), name
        if s.location == "torch_hub":
            assert s.sha256_prefix and f"-{s.sha256_prefix}." in s.filename, name
        if s.manual:
            assert "drive.google.com/drive/folders/" in s.source or s.source.startswith("file://"), name
        paths.add((s.location, s.filename))
    assert len(paths) == len(weights.WEIGHTS), "two entries share a cache path"
    assert weights.spec("fid_inception").filename == "pt_inception-2015-12-05-6726825d.pth"
    assert weights.spec("lpips_alex").filename == "alexnet-owt-7be5be79.pth"
    assert weights.spec("s3fd_fan").filename == "s3fd-619a316812.pth"
