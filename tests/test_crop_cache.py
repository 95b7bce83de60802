"""The crop cache and `tfbench data prepare`: a second prepare does no detection (counted), an interrupted
one resumes without corrupt entries, keys follow content and settings, landmarks come from stored crops."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import tfbench.cli.data_prepare  # noqa: F401  (registers `data prepare`)
from tfbench.cli.app import app
from tfbench.data import crop_cache
from tfbench.data.crop_cache import CropCache, clean_temporaries, file_sha256, settings_key
from tfbench.data.faces import FaceCrops, create, preset, process_video
from tfbench.data.faces_detect import DlibDetector
from tfbench.data.synthetic import SynthConfig, write_dataset

SETTINGS = preset("wav2lip", detector="dlib")  # 96 px crops, every frame covered


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    write_dataset(root, SynthConfig(layout="hdtf", speakers=3, clips=1, seconds=1.2, seed=0))
    return root


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TFBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(crop_cache, "_HASH_MEMO", {})
    return tmp_path / "home"


@pytest.fixture
def detect_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the frames every dlib detector is asked about (measured, not assumed)."""
    calls: list[int] = []
    original = DlibDetector.detect

    def counting(self: DlibDetector, frames: np.ndarray) -> list[np.ndarray]:
        calls.append(len(frames))
        return original(self, frames)

    monkeypatch.setattr(DlibDetector, "detect", counting)
    return calls


def prepare(root: Path, *extra: str, exit_code: int = 0) -> str:
    args = [
        "data",
        "prepare",
        "--dataset",
        "synthetic",
        "--root",
        str(root),
        "--detector",
        "dlib",
        "--crop",
        "96",
    ]
    result = CliRunner().invoke(app, [*args, *extra])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == exit_code, result.output
    return result.output


def row(output: str, name: str) -> int:
    line = next(line for line in output.splitlines() if f"│ {name} " in line)
    return int(line.split("│")[2])


def entries(home: Path) -> list[Path]:
    return sorted((home / "cache" / "crops").rglob("*.npz"))


def same(a: FaceCrops, b: FaceCrops) -> bool:
    names = ("crops", "frame_indices", "boxes", "detected", "windows", "face_boxes")
    return all(np.array_equal(getattr(a, n), getattr(b, n)) for n in names) and a.skip_reason == b.skip_reason


def test_second_prepare_does_no_detection_work(dataset: Path, home: Path, detect_calls: list[int]) -> None:
    first = prepare(dataset)
    assert row(first, "computed") == 3 and row(first, "already cached") == 0
    assert sum(detect_calls) == 3 * 30 and len(entries(home)) == 3
    detect_calls.clear()
    second = prepare(dataset)
    assert row(second, "computed") == 0 and row(second, "already cached") == 3
    assert detect_calls == []  # not one frame went through the detector


def test_interrupted_prepare_resumes_and_every_entry_is_whole(
    dataset: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done: list[Path] = []

    def dies_on_the_second(video: Path, *args: object, **kwargs: object) -> FaceCrops:
        if len(done) == 1:
            raise KeyboardInterrupt  # the user's Ctrl-C, half-way through the split
        done.append(video)
        return process_video(video, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(crop_cache, "process_video", dies_on_the_second)
    prepare(dataset, exit_code=130)  # click turns Ctrl-C into "Aborted!", exit code 130
    assert len(entries(home)) == 1 and not list(home.rglob("*.tmp"))
    monkeypatch.undo()
    monkeypatch.setenv("TFBENCH_HOME", str(home))
    output = prepare(dataset)
    assert row(output, "computed") == 2 and row(output, "already cached") == 1
    cache = CropCache()
    for video in sorted(dataset.rglob("*.mp4")):
        loaded = cache._load(cache.entry_path(video, SETTINGS))
        assert (
            loaded is not None and loaded.ok and len(loaded) == 30 and loaded.crops.shape == (30, 96, 96, 3)
        )
    before = cache._load(cache.entry_path(done[0], SETTINGS))  # written before the interruption
    assert before is not None and same(before, process_video(done[0], SETTINGS, create(SETTINGS)))


def test_killed_writer_leaves_a_temporary_that_is_ignored_and_cleaned(dataset: Path, home: Path) -> None:
    video = sorted(dataset.rglob("*.mp4"))[0]
    script = textwrap.dedent(f"""
        import os, signal
        from tfbench.data import crop_cache
        from tfbench.data.faces import preset
        real = os.replace
        def dies(source, target):  # the process is killed once an entry is written, before its rename
            if str(target).endswith(".npz"):
                os.kill(os.getpid(), signal.SIGKILL)
            real(source, target)
        os.replace = dies
        crop_cache.CropCache().get_or_compute({str(video)!r}, preset("wav2lip", detector="dlib"))
    """)
    env = {**os.environ, "TFBENCH_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    leftovers = [p for p in home.rglob("*.tmp") if ".npz." in p.name]
    assert len(leftovers) == 1 and not entries(home)  # a whole temporary, never renamed into place
    cache = CropCache()
    crops = cache.get_or_compute(video, SETTINGS)
    assert cache.misses == 1 and crops.ok and not leftovers[0].exists()
    assert cache._load(entries(home)[0]) is not None


def test_damaged_entry_is_recomputed(dataset: Path, home: Path, detect_calls: list[int]) -> None:
    video = sorted(dataset.rglob("*.mp4"))[1]
    first = CropCache().get_or_compute(video, SETTINGS)
    entry = entries(home)[0]
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])  # as a full disk might leave it
    cache = CropCache()
    again = cache.get_or_compute(video, SETTINGS)
    assert (cache.recovered, cache.misses, cache.hits) == (1, 1, 0) and same(first, again)
    assert CropCache().get_or_compute(video, SETTINGS) is not None


def test_keys_follow_content_and_settings(dataset: Path, home: Path, tmp_path: Path) -> None:
    video = sorted(dataset.rglob("*.mp4"))[2]
    cache = CropCache()
    cache.get_or_compute(video, SETTINGS)
    copy = tmp_path / "renamed.mp4"
    shutil.copy(video, copy)
    cache.get_or_compute(copy, SETTINGS)  # same bytes elsewhere: a hit
    assert (cache.hits, cache.misses) == (1, 1)
    assert cache.entry_path(video, SETTINGS.replace(smooth_window=3)) != cache.entry_path(video, SETTINGS)
    assert settings_key(SETTINGS.replace(batch_size=4))[0] == settings_key(SETTINGS)[0]  # speed only
    assert settings_key(SETTINGS.replace(crop="224"))[0] != settings_key(SETTINGS)[0]
    with open(copy, "ab") as handle:  # other bytes: another hash (the memo is keyed by size and mtime)
        handle.write(b"\0")
    assert file_sha256(copy) != file_sha256(video)


def test_weights_file_is_part_of_the_key(home: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    s3fd = preset("syncnet_pipeline")
    key_a, described = settings_key(s3fd, {"s3fd": a})
    assert described["weights_sha256"] == file_sha256(a) and key_a != settings_key(s3fd, {"s3fd": b})[0]
    assert settings_key(preset("syncnet_pipeline", detector="none"))[1]["weights_sha256"] == "none"


def test_landmarks_come_from_the_stored_crops(dataset: Path, home: Path, detect_calls: list[int]) -> None:
    video = sorted(dataset.rglob("*.mp4"))[1]
    CropCache().get_or_compute(video, SETTINGS)
    detect_calls.clear()
    cache = CropCache()
    crops = cache.get_or_compute(video, SETTINGS, landmarks=True)
    assert detect_calls == [] and cache.hits == 1
    assert crops.landmarks is not None and crops.landmarks.shape == (30, 68, 2)
    mouth = crops.landmarks[:, 48:68]
    assert (mouth >= 0).all() and (mouth < 96).all() and mouth[..., 1].mean() > 48  # lower half of the crop
    reloaded = CropCache().get_or_compute(video, SETTINGS, landmarks=True)
    assert reloaded.landmarks is not None and np.array_equal(reloaded.landmarks, crops.landmarks)


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path: Path) -> None:
    import socket

    dead = tmp_path / f".x.npz.{socket.gethostname()}.999999999.abcd1234.tmp"
    alive = tmp_path / f".y.npz.{socket.gethostname()}.{os.getpid()}.abcd1234.tmp"
    for path in (dead, alive):
        path.write_bytes(b"partial")
    assert clean_temporaries(tmp_path) == 1 and not dead.exists() and alive.exists()


def test_unreadable_video_is_reported_not_cached(dataset: Path, home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(sorted(dataset.rglob("*.mp4"))[1], folder / "good.mp4")
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    args = [
        "data",
        "prepare",
        "--dataset",
        "folder",
        "--root",
        str(folder),
        "--detector",
        "dlib",
        "--crop",
        "96",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "unreadable videos" in result.output and "broken.mp4" in result.output
    assert row(result.output, "computed") == 1 and row(result.output, "unreadable (not cached)") == 1
    assert len(entries(home)) == 1
