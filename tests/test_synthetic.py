"""The synthetic talking-face generator: deterministic, offsets recoverable from the mp4s, layouts, CLI."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import tfbench.cli
import tfbench.cli.synth  # noqa: F401  (explicitly, in case the package stops importing it)
from tfbench.cli.app import app
from tfbench.data.synthetic import ManifestRow, SynthConfig, generate_clip, read_manifest, write_dataset
from tfbench.data.synthetic_face import (
    MIN_COLOUR_DISTANCE,
    MOUTH_INTERIOR,
    mouth_interior_pixels,
    sample_identity,
)
from tfbench.errors import TfbenchError
from tfbench.media import Video, read_video

SEED = 13  # with offset_fraction 0.6 this seed plants offsets +8, -8, 0, 0, -1, 0 in the lrs2 set
MAX_LAG = 10
Dataset = tuple[Path, SynthConfig, list[ManifestRow]]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Dataset]:
    """One small written dataset per layout, generated once for the whole module."""
    configs = {
        "lrs2": SynthConfig("lrs2", speakers=2, clips=3, seconds=2.4, seed=SEED, offset_fraction=0.6),
        "lrs3": SynthConfig("lrs3", speakers=1, clips=2, seconds=2.0, seed=SEED),
        "hdtf": SynthConfig("hdtf", speakers=2, clips=1, seconds=2.0, seed=SEED),
    }
    out = {}
    for name, config in configs.items():
        folder = tmp_path_factory.mktemp(name)
        out[name] = (folder, config, write_dataset(folder, config))
    return out


@functools.cache
def _decoded(path: Path) -> Video:
    """Each written file is decoded once for the whole module."""
    return read_video(path)


def _frame_energy(audio: np.ndarray, n_frames: int, samples_per_frame: int = 640) -> np.ndarray:
    """RMS of each video frame's 40 ms of audio, computed here independently of the generator."""
    return np.sqrt(np.mean(audio[: n_frames * samples_per_frame].reshape(n_frames, -1) ** 2, axis=1))


def _lag_correlations(video_signal: np.ndarray, audio_signal: np.ndarray) -> np.ndarray:
    """Pearson correlation of video[i] with audio[i - lag] over the overlap, for lag = -10..+10."""
    n = len(video_signal)
    values = []
    for lag in range(-MAX_LAG, MAX_LAG + 1):
        v = video_signal[max(0, lag) : n + min(0, lag)]
        a = audio_signal[max(0, -lag) : n - max(0, lag)]
        values.append(np.corrcoef(v, a)[0, 1])
    return np.array(values)


def test_same_config_same_clip_and_another_seed_differs() -> None:
    config = SynthConfig("lrs2", speakers=2, clips=2, seconds=1.0, seed=5, offset_fraction=1.0)
    first, again = generate_clip(config, 1, 1), generate_clip(config, 1, 1)
    assert np.array_equal(first.frames, again.frames) and np.array_equal(first.audio, again.audio)
    assert first.offset_frames == again.offset_frames != 0
    assert (first.speaker, first.clip, first.relpath) == (again.speaker, again.clip, again.relpath)
    other = generate_clip(SynthConfig("lrs2", speakers=2, clips=2, seconds=1.0, seed=6), 1, 1)
    assert not np.array_equal(first.audio, other.audio) and not np.array_equal(first.frames, other.frames)
    assert first.speaker != other.speaker
    assert first.frames.shape == (25, 160, 160, 3) and first.frames.dtype == np.uint8
    assert first.audio.shape == (16000,) and first.audio.dtype == np.float32
    assert np.abs(first.audio).max() <= 1.0


def test_identities_differ_and_keep_clear_of_the_mouth_colour() -> None:
    identities = [sample_identity(SEED, i) for i in range(5)]
    for field in ("skin", "hair", "hair_style", "background"):
        assert len({getattr(ident, field) for ident in identities}) == 5, field
    assert len({ident.face_aspect for ident in identities}) == 5
    for ident in identities:
        for colour in ident.colours():
            distance = max(abs(c - m) for c, m in zip(colour, MOUTH_INTERIOR, strict=True))
            assert distance >= MIN_COLOUR_DISTANCE, (ident.index, colour)


def test_mouth_height_follows_energy_and_width_follows_f1() -> None:
    config = SynthConfig("lrs3", speakers=1, clips=1, seconds=3.0, seed=SEED, offset_fraction=0.0)
    clip = generate_clip(config, 0, 0)
    assert clip.offset_frames == 0
    interior = np.all(clip.frames == MOUTH_INTERIOR, axis=-1)
    height = interior.any(axis=2).sum(axis=1)
    width = interior.any(axis=1).sum(axis=1)
    assert np.corrcoef(height, clip.energy)[0, 1] > 0.9
    speaking = clip.mouth_open > 0.3
    assert speaking.sum() > 10 and np.ptp(clip.f1[speaking]) > 150  # F1 really moves
    assert np.corrcoef(width[speaking], clip.f1[speaking])[0, 1] > 0.8
    assert height[clip.energy < 0.02 * clip.energy.max()].max() == 0  # silence: lips closed


def test_planted_offsets_are_recovered_from_the_written_mp4s(datasets: dict[str, Dataset]) -> None:
    out = datasets["lrs2"][0]
    rows = read_manifest(out)
    offsets = [row.offset_frames for row in rows]
    assert offsets.count(0) >= 2 and min(offsets) < 0 < max(offsets) and 1 in map(abs, offsets)
    openings, energies = [], []
    for row in rows:
        video = _decoded(out / row.path)
        assert video.audio is not None
        opening = mouth_interior_pixels(video.frames).astype(np.float64)
        assert opening.max() > 100 and opening.min() == 0
        energy = _frame_energy(video.audio, video.n_frames)
        correlations = _lag_correlations(opening, energy)
        found = int(np.argmax(correlations)) - MAX_LAG
        at_truth = correlations[row.offset_frames + MAX_LAG]
        assert found == row.offset_frames, (row.path, found, np.round(correlations, 2))
        assert at_truth > 0.8, (row.path, at_truth)
        assert at_truth - np.sort(correlations)[-2] > 0.05  # a clear peak, not a near-tie
        openings.append(opening)
        energies.append(energy)
    # negative control: a mouth never follows another clip's audio this well, at any lag
    for index, opening in enumerate(openings):
        assert _lag_correlations(opening, energies[(index + 1) % len(rows)]).max() < 0.75


EXPECTED = {
    # layout: (path pattern, split-line pattern, (height, width))
    "lrs2": (r"main/(\d{19})/(000\d\d)\.mp4", r"(\d{19})/(000\d\d) NF", (160, 160)),
    "lrs3": (r"test/([\w-]{11})/(500\d\d)\.mp4", r"([\w-]{11})/(500\d\d)", (224, 224)),
    "hdtf": (r"((?:WDA|WRA|RD)_[A-Za-z]+)_(\d{3})\.mp4", r"((?:WDA|WRA|RD)_[A-Za-z]+)_(\d{3})", (256, 320)),
}


@pytest.mark.parametrize("layout", sorted(EXPECTED))
def test_layout_paths_lists_manifest_and_streams(datasets: dict[str, Dataset], layout: str) -> None:
    out, config, rows = datasets[layout]
    path_pattern, line_pattern, size = EXPECTED[layout]
    assert read_manifest(out) == rows and len(rows) == config.speakers * config.clips
    header = (out / "manifest.csv").read_text().splitlines()[0]
    assert header == "path,layout,speaker,clip,seconds,n_frames,fps,sample_rate,offset_frames,seed"
    lines = (out / "test.txt").read_text().splitlines()
    assert len(lines) == len(rows)
    assert len({row.speaker for row in rows}) == config.speakers
    for row, line in zip(rows, lines, strict=True):
        match = re.fullmatch(path_pattern, row.path)
        assert match and match.groups() == (row.speaker, row.clip), row.path
        line_match = re.fullmatch(line_pattern, line)
        assert line_match and line_match.groups() == (row.speaker, row.clip), line
        assert (row.layout, row.seed, row.fps, row.sample_rate) == (layout, SEED, 25, 16000)
        assert row.n_frames == round(config.seconds * 25) and row.seconds == config.seconds
        video = _decoded(out / row.path)
        assert video.frames.shape[1:3] == size and video.n_frames == row.n_frames
        assert video.fps == 25.0 and video.resampled_from is None and video.sample_rate == 16000
        assert video.audio is not None
        # AAC pads to whole 1024-sample frames: up to 64 ms more audio than video, never less
        assert 0 <= len(video.audio) / 16000 - row.n_frames / 25 < 0.065
    assert not list(out.rglob("*.tmp*"))


def test_hdtf_faces_are_off_centre_and_move(datasets: dict[str, Dataset]) -> None:
    out, _, rows = datasets["hdtf"]
    frames = read_video(out / rows[0].path, audio=False).frames
    background = frames[0, 0, 0].astype(int)
    foreground = np.abs(frames.astype(int) - background).max(axis=-1) > 30
    columns = np.array([np.flatnonzero(f.any(axis=0)).mean() for f in foreground[:, :200]])
    assert abs(columns.mean() - 160) > 5  # not centred
    assert np.ptp(columns) > 3  # moving


def test_rerun_skips_complete_clips_and_redoes_missing_ones(datasets: dict[str, Dataset]) -> None:
    out, config, rows = datasets["lrs3"]
    stamps = {row.path: (out / row.path).stat().st_mtime_ns for row in rows}
    (out / rows[0].path).unlink()
    calls: list[tuple[int, int]] = []
    assert write_dataset(out, config, progress=lambda done, total: calls.append((done, total))) == rows
    assert calls == [(1, 2), (2, 2)]
    assert (out / rows[0].path).is_file()
    assert (out / rows[1].path).stat().st_mtime_ns == stamps[rows[1].path]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"layout": "lrs4"}, "did you mean"),
        ({"speakers": 0}, "speakers must be positive"),
        ({"clips": -1}, "clips must be positive"),
        ({"seconds": 0.0}, "seconds must be a positive number"),
        ({"seconds": 0.15}, "at least 5"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_options_raise_a_clear_error(options: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"layout": "lrs2", "speakers": 1, "clips": 1, "seconds": 1.0, "seed": 0}
    with pytest.raises(TfbenchError, match=message):
        SynthConfig(**{**arguments, **options})  # type: ignore[arg-type]


def test_clip_index_out_of_range_is_an_error() -> None:
    with pytest.raises(TfbenchError, match="outside"):
        generate_clip(SynthConfig("lrs2", speakers=1, clips=1, seconds=1.0, seed=0), 1, 0)


def test_cli_synth_writes_the_dataset_and_rejects_bad_options(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "hdtf"
    arguments = ["synth", str(out), "--layout", "hdtf", "--speakers", "2", "--clips", "1", "--seconds", "0.4"]
    result = runner.invoke(app, [*arguments, "--seed", "3"])
    assert result.exit_code == 0, result.output
    rows = read_manifest(out)
    assert len(rows) == 2 and all((out / row.path).is_file() for row in rows)
    assert (out / "test.txt").is_file() and "wrote 2 clips" in result.output
    bad_options = {
        "--layout": ("lrs5", "did you mean"),
        "--speakers": ("0", "speakers"),
        "--seconds": ("0.1", "at least 5"),
    }
    for option, (value, message) in bad_options.items():
        result = runner.invoke(app, ["synth", str(tmp_path / "bad"), option, value])
        reported = result.output + str(result.exception or "")
        assert result.exit_code != 0 and message in reported, (option, reported)
    assert not (tmp_path / "bad").exists()
