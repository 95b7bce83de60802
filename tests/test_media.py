"""media.py: round trips, fps conversion by timestamp, audio resampling, and clear errors on bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import tfbench.cli.probe  # noqa: F401  (registers the command)
from tfbench import media
from tfbench.cli.app import app
from tfbench.errors import MediaError

AAC_FRAME = 1024


def _frames(n: int, height: int = 64, width: int = 48) -> np.ndarray:
    """Frames whose mean brightness encodes their index, so dropped or repeated frames are visible."""
    levels = np.linspace(20, 235, n).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (n, height, width, 3)).copy()


def _tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_frequency(wav: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(wav.size)))
    return float(np.fft.rfftfreq(wav.size, 1 / rate)[spectrum.argmax()])


def test_round_trip_keeps_frames_fps_and_audio_length(tmp_path: Path) -> None:
    frames, wav = _frames(50), _tone(2.0, 16000)
    path = media.write_video(tmp_path / "clip.mp4", frames, fps=25, audio=wav)
    video = media.read_video(path)
    assert video.n_frames == 50
    assert video.fps == pytest.approx(25.0)
    assert video.resampled_from is None
    assert video.audio is not None
    assert abs(video.audio.shape[0] - wav.shape[0]) <= AAC_FRAME
    np.testing.assert_allclose(video.frames.mean(axis=(1, 2, 3)), frames.mean(axis=(1, 2, 3)), atol=2.0)
    np.testing.assert_allclose(video.timestamps, np.arange(50) / 25, atol=1e-6)
    assert _peak_frequency(video.audio, 16000) == pytest.approx(440.0, abs=1.0)
    info = media.probe(path)
    assert (info.n_frames, info.width, info.height, info.sample_rate, info.channels) == (50, 48, 64, 16000, 1)
    assert info.duration_mismatch is not None and abs(info.duration_mismatch) <= AAC_FRAME / 16000


def test_no_temporary_files_left(tmp_path: Path) -> None:
    media.write_video(tmp_path / "a.mp4", _frames(5), fps=25)
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="even"):
        media.write_video(tmp_path / "odd.mp4", _frames(5, height=63), fps=25)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("source_fps", "expected"), [(50, 50), (12.5, 50), (29.97, 50), (25, 50)])
def test_conversion_to_25_fps_by_timestamp(tmp_path: Path, source_fps: float, expected: int) -> None:
    n = round(2.0 * source_fps)
    path = media.write_video(tmp_path / "src.mp4", _frames(n), fps=source_fps)
    video = media.read_video(path, audio=False)
    assert video.fps == 25.0
    assert video.n_frames == expected
    assert video.resampled_from == (None if source_fps == 25 else pytest.approx(source_fps, rel=1e-3))
    brightness = video.frames.mean(axis=(1, 2, 3))
    assert np.all(np.diff(brightness) >= -2.0), "retimed frames must keep their order"
    # output frame k shows the latest source frame i whose time rounds (halves up) to an output slot <= k
    slots = np.floor(np.arange(n) / source_fps * 25 + 0.5 + 1e-6)
    source_index = np.array([np.flatnonzero(slots <= k).max() for k in range(expected)])
    np.testing.assert_allclose(brightness, np.linspace(20, 235, n)[source_index], atol=3.0)


def test_streaming_batches_cover_the_clip(tmp_path: Path) -> None:
    path = media.write_video(tmp_path / "s.mp4", _frames(23), fps=25)
    batches = list(media.iter_frames(path, batch_size=5))
    assert [b.frames.shape[0] for b in batches] == [5, 5, 5, 5, 3]
    np.testing.assert_allclose(np.concatenate([b.timestamps for b in batches]), np.arange(23) / 25, atol=1e-6)


def test_resampling_44k1_keeps_tone_frequency(tmp_path: Path) -> None:
    wav = _tone(1.0, 44100, freq=1000.0)
    path = media.write_video(tmp_path / "hi.mp4", _frames(25), fps=25, audio=wav, sample_rate=44100)
    audio = media.read_audio(path)
    assert abs(audio.shape[0] - 16000) <= AAC_FRAME
    assert _peak_frequency(audio, 16000) == pytest.approx(1000.0, abs=1.0)
    assert media.probe(path).sample_rate == 44100


def test_stereo_is_averaged_to_mono(tmp_path: Path) -> None:
    import av

    path = tmp_path / "stereo.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "stereo"
        left, right = _tone(1.0, 16000, 300.0), np.zeros(16000, np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([left, right]), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = 16000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    audio = media.read_audio(path)
    assert np.abs(audio[2000:-2000]).max() == pytest.approx(0.25, abs=0.03)  # the mean, not the sum


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("this is not a video\n" * 50), "cannot be read"),
    ],
)
def test_bad_files_name_the_file(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.mp4"
    make(path)
    with pytest.raises(MediaError, match=message) as info:
        media.read_video(path)
    assert str(path) in str(info.value)


def test_truncated_file_is_an_error(tmp_path: Path) -> None:
    good = media.write_video(tmp_path / "good.mp4", _frames(50), fps=25, audio=_tone(2.0, 16000))
    data = good.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(MediaError) as info:
        media.read_video(cut)
    assert str(cut) in str(info.value)


def test_missing_audio_is_an_error_unless_optional(tmp_path: Path) -> None:
    path = media.write_video(tmp_path / "silent.mp4", _frames(10), fps=25)
    with pytest.raises(MediaError, match="no audio stream"):
        media.read_video(path)
    assert media.read_video(path, require_audio=False).audio is None


def test_probe_cli_table_and_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # short relative names fit the 80-column table of the test console
    good = media.write_video(tmp_path / "good.mp4", _frames(10), fps=25, audio=_tone(0.4, 16000))
    bad = tmp_path / "bad.mp4"
    bad.write_text("nope")
    runner = CliRunner()
    ok = runner.invoke(app, ["probe", good.name])
    assert ok.exit_code == 0, ok.output
    assert "good.mp4" in ok.output and "h264" in ok.output and "aac" in ok.output
    failed = runner.invoke(app, ["probe", good.name, bad.name])
    assert failed.exit_code == 2
    assert "bad.mp4" in failed.output
