"""Video and audio I/O through PyAV: decode to RGB uint8 frames and 16 kHz mono float32 audio, encode mp4.

Every failure of the underlying ffmpeg (missing, empty, truncated or non-video files) becomes a `MediaError`
naming the file. Frames can be converted to 25 fps by timestamp; `Video.resampled_from` records when that
happened so a run can say so. Files are written under a temporary name and renamed only when complete.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from tfbench.audio import resample
from tfbench.errors import MediaError
from tfbench.fileio import atomic_path

TARGET_FPS = 25.0
TARGET_SAMPLE_RATE = 16000
_AV_ERRORS = (av.error.FFmpegError, UnicodeDecodeError, ValueError, IndexError)


@dataclass(frozen=True)
class MediaInfo:
    """What `probe` finds in a file: its streams and whether audio and video durations agree."""

    path: Path
    container: str
    video_codec: str
    width: int
    height: int
    fps: float
    n_frames: int
    video_seconds: float
    audio_codec: str | None
    sample_rate: int | None
    channels: int | None
    audio_seconds: float | None

    @property
    def duration_mismatch(self) -> float | None:
        """Audio minus video duration in seconds (None without audio)."""
        return None if self.audio_seconds is None else self.audio_seconds - self.video_seconds


@dataclass(frozen=True)
class FrameBatch:
    """A run of consecutive decoded frames: (B, H, W, 3) uint8 RGB and their times in seconds."""

    frames: np.ndarray
    timestamps: np.ndarray


@dataclass(frozen=True)
class Video:
    """A whole decoded clip. `resampled_from` is the source fps when frames were converted to `fps`."""

    path: Path
    frames: np.ndarray
    fps: float
    timestamps: np.ndarray
    audio: np.ndarray | None
    sample_rate: int
    resampled_from: float | None = None

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if not path.is_file():
        raise MediaError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file")


@contextmanager
def _open(path: Path) -> Iterator[av.container.InputContainer]:
    """Open a media file for reading; ffmpeg errors become a MediaError naming the file."""
    _check_file(path)
    try:
        container = av.open(str(path), mode="r")
    except _AV_ERRORS as exc:
        raise MediaError(f"{path}: cannot be read as a media file ({exc})") from exc
    try:
        yield container
    except _AV_ERRORS as exc:
        raise MediaError(f"{path}: decoding failed, the file may be truncated or corrupt ({exc})") from exc
    finally:
        container.close()


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise MediaError(f"{path}: has no video stream")
    return container.streams.video[0]


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.base_rate or stream.guessed_rate
    if not rate:
        raise MediaError("video stream declares no frame rate")
    return float(rate)


def probe(path: str | Path) -> MediaInfo:
    """Read the streams of a file by decoding it once (true frame counts, not header guesses)."""
    path = Path(path)
    with _open(path) as container:
        vstream = _video_stream(container, path)
        fps = _stream_fps(vstream)
        n_frames = sum(1 for _ in container.decode(vstream))
        width, height = vstream.codec_context.width, vstream.codec_context.height
        astream = container.streams.audio[0] if container.streams.audio else None
    if n_frames == 0:
        raise MediaError(f"{path}: the video stream holds no decodable frame")
    audio_seconds = None
    if astream is not None:
        audio_seconds = read_audio(path, sample_rate=astream.rate).shape[0] / astream.rate
    return MediaInfo(
        path=path,
        container=container.format.name,
        video_codec=vstream.codec_context.name,
        width=width,
        height=height,
        fps=fps,
        n_frames=n_frames,
        video_seconds=n_frames / fps,
        audio_codec=None if astream is None else astream.codec_context.name,
        sample_rate=None if astream is None else astream.rate,
        channels=None if astream is None else astream.codec_context.channels,
        audio_seconds=audio_seconds,
    )


def _decoded_frames(path: Path) -> Iterator[tuple[np.ndarray, float]]:
    """Every frame of the first video stream as (RGB uint8 array, seconds from the stream start)."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        start: float | None = None
        for index, frame in enumerate(container.decode(stream)):
            time = frame.time if frame.time is not None else index / _stream_fps(stream)
            start = time if start is None else start
            yield frame.to_ndarray(format="rgb24"), time - start


def _nearest_slot(time: float, fps: float) -> int:
    """The output frame index nearest to `time`, halves rounded up as ffmpeg does (float-error tolerant)."""
    return math.floor(time * fps + 0.5 + 1e-6)


def _retimed(
    frames: Iterator[tuple[np.ndarray, float]], source_fps: float, fps: float
) -> Iterator[tuple[np.ndarray, float]]:
    """Convert a frame sequence to `fps` by timestamp, as ffmpeg's fps filter does (nearest rounding).

    Output frame n shows the latest source frame whose timestamp rounds to an output index <= n, so frames
    are repeated for a lower source rate and dropped for a higher one; the clip duration is kept.
    """
    out_index = 0
    previous: np.ndarray | None = None
    last_time = 0.0
    for image, time in frames:
        slot = _nearest_slot(time, fps)
        while previous is not None and out_index < slot:
            yield previous, out_index / fps
            out_index += 1
        previous, last_time = image, time
    if previous is None:
        return
    end = max(1, _nearest_slot(last_time + 1.0 / source_fps, fps))  # the clip's duration, at least a frame
    while out_index < end:
        yield previous, out_index / fps
        out_index += 1


def iter_frames(path: str | Path, batch_size: int = 64, fps: float | None = None) -> Iterator[FrameBatch]:
    """Decode a video in batches of at most `batch_size` frames, so memory does not grow with its length.

    With `fps`, frames are converted to that rate by timestamp (see `_retimed`); otherwise native frames.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    path = Path(path)
    source = _decoded_frames(path)
    if fps is not None:
        source = _retimed(source, video_fps(path), fps)
    images: list[np.ndarray] = []
    times: list[float] = []
    for image, time in source:
        images.append(image)
        times.append(time)
        if len(images) == batch_size:
            yield FrameBatch(np.stack(images), np.asarray(times))
            images, times = [], []
    if images:
        yield FrameBatch(np.stack(images), np.asarray(times))


def video_fps(path: str | Path) -> float:
    """The frame rate a file declares for its first video stream."""
    path = Path(path)
    with _open(path) as container:
        return _stream_fps(_video_stream(container, path))


def _mono_float(samples: np.ndarray, planar: bool, channels: int) -> np.ndarray:
    """One decoded audio frame as float32 mono in [-1, 1]: channels averaged, integer formats scaled."""
    scale = float(np.iinfo(samples.dtype.type).max) + 1.0 if np.issubdtype(samples.dtype, np.integer) else 1.0
    per_channel = samples if planar else samples.reshape(-1, channels).T  # planar frames are (channels, n)
    return (per_channel.astype(np.float32).mean(axis=0) / scale).astype(np.float32)


def read_audio(path: str | Path, sample_rate: int | None = TARGET_SAMPLE_RATE) -> np.ndarray:
    """The first audio stream as float32 mono (channels averaged), resampled to `sample_rate` (polyphase).

    `sample_rate=None` keeps the source rate. A file without audio raises MediaError.
    """
    path = Path(path)
    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError(f"{path}: has no audio stream")
        stream = container.streams.audio[0]
        source_rate = int(stream.rate)
        chunks: list[np.ndarray] = []
        for frame in container.decode(stream):
            chunks.append(_mono_float(frame.to_ndarray(), frame.format.is_planar, len(frame.layout.channels)))
    wav = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if sample_rate is not None and sample_rate != source_rate and wav.size:
        wav = resample(wav, source_rate, sample_rate)
    return wav.astype(np.float32, copy=False)


def read_video(
    path: str | Path, fps: float | None = TARGET_FPS, audio: bool = True, require_audio: bool = True
) -> Video:
    """Decode a whole clip: frames (converted to `fps` by timestamp when they differ) and 16 kHz mono audio.

    `fps=None` keeps the native rate. With `audio=False` the audio is not decoded; with
    `require_audio=False` a file without an audio stream gives `audio=None` instead of an error.
    """
    path = Path(path)
    native = video_fps(path)
    convert = fps is not None and abs(native - fps) > 1e-3
    batches = list(iter_frames(path, batch_size=256, fps=fps if convert else None))
    if not batches:
        raise MediaError(f"{path}: the video stream holds no decodable frame")
    wav = None
    if audio:
        has_audio = probe_has_audio(path)
        if has_audio:
            wav = read_audio(path)
        elif require_audio:
            raise MediaError(f"{path}: has no audio stream")
    return Video(
        path=path,
        frames=np.concatenate([b.frames for b in batches]),
        fps=float(fps) if convert and fps is not None else native,
        timestamps=np.concatenate([b.timestamps for b in batches]),
        audio=wav,
        sample_rate=TARGET_SAMPLE_RATE,
        resampled_from=native if convert else None,
    )


def probe_has_audio(path: str | Path) -> bool:
    """Whether the file carries an audio stream (reads the header only)."""
    path = Path(path)
    with _open(path) as container:
        return bool(container.streams.audio)


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = TARGET_SAMPLE_RATE,
    crf: int = 18,
) -> Path:
    """Encode (T, H, W, 3) uint8 RGB frames and optional float32 mono audio as H.264 yuv420p + AAC mp4.

    Written to a temporary name in the same folder and renamed when complete: a killed job leaves either
    the previous file or none, never half a video. H and W must be even (yuv420p).
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
        raise MediaError(f"{path}: frames must be a non-empty (T, H, W, 3) uint8 array, got {frames.shape}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise MediaError(f"{path}: frame size {width}x{height} must be even for yuv420p")
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        vstream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        vstream.options = {"crf": str(crf), "preset": "veryfast"}
        astream = None
        if audio is not None:
            astream = container.add_stream("aac", rate=sample_rate)
            astream.layout = "mono"
        for image in frames:
            container.mux(vstream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(vstream.encode(None))
        if astream is not None and audio is not None:
            samples = np.clip(np.asarray(audio, np.float32).reshape(1, -1), -1.0, 1.0)
            aframe = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
            aframe.sample_rate, aframe.pts = sample_rate, 0
            container.mux(astream.encode(aframe))
            container.mux(astream.encode(None))
    return path
