"""Synthetic talking-face data: speech-like audio, cartoon faces whose lips follow it, planted AV offsets.

Real LRS2/LRS3/HDTF cannot be shipped or downloaded in tests, so tfbench makes its own clips in their
folder layouts. Each clip is fully determined by (seed, speaker index, clip index) and the layout.

Audio (16 kHz): voiced syllables from a harmonic glottal-like source with a moving pitch (90-250 Hz),
shaped by three formants that change per syllable (so F1 varies), raised-cosine attack/decay envelopes,
silent pauses between words, a little breath noise and plosive bursts.

Driving features, per video frame i (the audio samples of [i/fps, (i+1)/fps), 40 ms at 25 fps):
`energy` = RMS, and `f1` = the power-weighted spectral centroid over 200-1000 Hz (follows F1).
The mouth's opening (height) follows energy and its width follows f1, so lip shape is predictable from
the spectrum.

Planted offset, in frames, with syncnet_python's sign convention for its reported AV offset:
**offset k > 0 means the video lags the audio by k frames**: the mouth at video frame i shows the audio
features of frame i - k (frames before k show a closed mouth). k < 0: the video leads; the last |k| frames
are closed. Most clips get 0; a fraction `offset_fraction` get +-1..+-max_offset.

Layouts (`LAYOUTS`), all 25 fps, with a split file and `manifest.csv` at the root:
- `lrs2`: `main/<speaker>/<clip>.mp4`, 160x160 face-centred crops; speakers are 19-digit strings, clips
  `00001`...; `test.txt` lines `<speaker>/<clip> NF` (the real LRS2 test list carries a second,
  whitespace-separated flag, NF or MV, on each line; readers take the first token).
- `lrs3`: `test/<speaker>/<clip>.mp4`, 224x224 crops; speakers are 11-character YouTube-like ids, clips
  `50001`...; `test.txt` lines `<speaker>/<clip>` relative to `test/`.
- `hdtf`: `<name>.mp4` with name `<speaker>_<clip>` such as `WDA_AlexMorgan_000`, 320x256 uncropped frames,
  the face off-centre and moving more; `test.txt` lines `<name>`.
`manifest.csv` columns: path (relative, forward slashes), layout, speaker, clip, seconds, n_frames, fps,
sample_rate, offset_frames, seed. The mouth interior has a reserved colour, so the opening can be measured
from decoded video without a detector: `synthetic_face.mouth_interior_pixels`.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from collections.abc import Callable
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import numpy as np

from tfbench.data.synthetic_face import (
    Identity,
    blinks,
    draw_face,
    frame_features,
    head_motion,
    mouth_drive,
    sample_identity,
    synthesize_speech,
)
from tfbench.errors import TfbenchError
from tfbench.fileio import atomic_write_text
from tfbench.registry import Registry

WINDOW_FRAMES = 5
"""The shortest clip: one 5-frame window, what SyncNet-style scorers need."""


def _lrs2_speaker(rng: np.random.Generator) -> str:
    return str(rng.integers(5_000_000_000_000_000_000, 6_400_000_000_000_000_000))


def _lrs3_speaker(rng: np.random.Generator) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), size=11))


def _hdtf_speaker(rng: np.random.Generator) -> str:
    firsts = ("Alex", "Maria", "Jonas", "Priya", "Tomas", "Lena", "Omar", "Grace", "Ivan", "Nadia")
    lasts = ("Morgan", "Silva", "Berg", "Okafor", "Novak", "Reyes", "Lindqvist", "Chen", "Haddad", "Kowal")
    prefix = ("WDA", "WRA", "RD")[int(rng.integers(0, 3))]
    return f"{prefix}_{firsts[int(rng.integers(0, 10))]}{lasts[int(rng.integers(0, 10))]}"


@dataclass(frozen=True)
class LayoutSpec:
    """How one dataset's folders, names and frames look. Geometry is in fractions of the frame height."""

    name: str
    height: int
    width: int
    face_scale: float  # face half-height / frame height
    centre: tuple[float, float]  # face centre (x / width, y / height)
    centre_jitter: float  # per-clip random shift of the centre, fraction of the frame height
    motion: float  # head translation amplitude, fraction of the frame height
    zoom: float  # relative scale-change amplitude
    speaker_id: Callable[[np.random.Generator], str]
    clip_id: Callable[[int], str]
    relpath: Callable[[str, str], str]  # (speaker, clip) -> path of the mp4 under the output folder
    split_line: Callable[[str, str], str]  # (speaker, clip) -> line of test.txt


LAYOUTS: Registry[LayoutSpec] = Registry("synthetic layout")
LAYOUTS.add(
    "lrs2",
    LayoutSpec(
        "lrs2", 160, 160, 0.3, (0.5, 0.47), 0.0, 0.015, 0.02, _lrs2_speaker,
        lambda c: f"{c + 1:05d}", lambda s, c: f"main/{s}/{c}.mp4", lambda s, c: f"{s}/{c} NF",
    ),
)  # fmt: skip
LAYOUTS.add(
    "lrs3",
    LayoutSpec(
        "lrs3", 224, 224, 0.3, (0.5, 0.47), 0.0, 0.015, 0.02, _lrs3_speaker,
        lambda c: f"{50001 + c}", lambda s, c: f"test/{s}/{c}.mp4", lambda s, c: f"{s}/{c}",
    ),
)  # fmt: skip
LAYOUTS.add(
    "hdtf",
    LayoutSpec(
        "hdtf", 256, 320, 0.24, (0.42, 0.45), 0.06, 0.04, 0.05, _hdtf_speaker,
        lambda c: f"{c:03d}", lambda s, c: f"{s}_{c}.mp4", lambda s, c: f"{s}_{c}",
    ),
)  # fmt: skip


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. Validated on construction: a bad value raises `TfbenchError`.

    `seconds` is rounded to whole frames (n_frames = round(seconds * fps)); the audio has exactly the
    video's duration.
    `offset_fraction` of the clips (in expectation) get a nonzero planted offset of 1..`max_offset`
    frames (either sign), capped so that at least one 5-frame window keeps a moving mouth.
    """

    layout: str
    speakers: int
    clips: int
    seconds: float
    seed: int
    fps: int = 25
    sample_rate: int = 16000
    offset_fraction: float = 0.25
    max_offset: int = 8

    def __post_init__(self) -> None:
        LAYOUTS.get(self.layout)  # unknown layout: did-you-mean error
        for name in ("speakers", "clips", "fps", "sample_rate"):
            if getattr(self, name) <= 0:
                raise TfbenchError(f"synthetic data: {name} must be positive, got {getattr(self, name)}")
        if not (math.isfinite(self.seconds) and self.seconds > 0):
            raise TfbenchError(f"synthetic data: seconds must be a positive number, got {self.seconds}")
        if self.n_frames < WINDOW_FRAMES:
            raise TfbenchError(
                f"synthetic data: {self.seconds} s at {self.fps} fps is {self.n_frames} frame(s); "
                f"need at least {WINDOW_FRAMES} (one sync window), i.e. {WINDOW_FRAMES / self.fps:g} s"
            )
        if self.seed < 0:
            raise TfbenchError(f"synthetic data: seed must be >= 0, got {self.seed}")
        if not 0.0 <= self.offset_fraction <= 1.0 or self.max_offset < 0:
            raise TfbenchError("synthetic data: offset_fraction must be in [0, 1] and max_offset >= 0")

    @property
    def spec(self) -> LayoutSpec:
        """The layout's description."""
        return LAYOUTS.get(self.layout)

    @property
    def n_frames(self) -> int:
        """Video frames per clip."""
        return round(self.seconds * self.fps)

    @property
    def n_samples(self) -> int:
        """Audio samples per clip: exactly the video's duration."""
        return round(self.n_frames * self.sample_rate / self.fps)


@dataclass(frozen=True)
class SyntheticClip:
    """One generated clip, in memory. Audio-side features are indexed by audio frame, mouth by video frame."""

    speaker: str
    clip: str
    relpath: str
    identity: Identity
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    audio: np.ndarray  # (N,) float32 mono in [-1, 1]
    fps: int
    sample_rate: int
    offset_frames: int
    energy: np.ndarray  # (T,) RMS of the audio frame
    f1: np.ndarray  # (T,) spectral centroid in Hz over 200-1000 Hz of the audio frame
    mouth_open: np.ndarray  # (T,) opening in [0, 1] shown in video frame i (= audio frame i - offset)
    mouth_width: np.ndarray  # (T,) width factor shown in video frame i


@dataclass(frozen=True)
class ManifestRow:
    """One line of `manifest.csv`; `path` is relative to the output folder, with forward slashes."""

    path: str
    layout: str
    speaker: str
    clip: str
    seconds: float
    n_frames: int
    fps: int
    sample_rate: int
    offset_frames: int
    seed: int

    def as_strings(self) -> tuple[str, ...]:
        """The row as written to (and read back from) the CSV file."""
        return tuple(str(value) for value in astuple(self))


MANIFEST_COLUMNS = tuple(f.name for f in fields(ManifestRow))


def _rng(config: SynthConfig, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=key))


@functools.lru_cache(maxsize=16)
def speaker_ids(config: SynthConfig) -> tuple[str, ...]:
    """The dataset-style ids of all speakers, unique, depending only on (seed, layout, index)."""
    ids: list[str] = []
    for index in range(config.speakers):
        attempt = 0
        while (name := config.spec.speaker_id(_rng(config, index, 1, attempt))) in ids:
            attempt += 1
            if attempt == 20:  # a small name space (hdtf) ran out: a numeric suffix keeps names unique
                name = f"{name}{index}"
                break
        ids.append(name)
    return tuple(ids)


def planted_offset(config: SynthConfig, speaker_index: int, clip_index: int) -> int:
    """The clip's planted AV offset in frames (syncnet_python sign: > 0 means the video lags)."""
    rng = _rng(config, speaker_index, clip_index, 2)
    nonzero, magnitude, negative = rng.random(), rng.integers(1, 1 << 16), rng.random() < 0.5
    limit = min(config.max_offset, config.n_frames - WINDOW_FRAMES)
    if limit < 1 or nonzero >= config.offset_fraction:
        return 0
    return int(1 + magnitude % limit) * (-1 if negative else 1)


def _shift(values: np.ndarray, offset: int, fill: float) -> np.ndarray:
    """out[i] = values[i - offset], `fill` where that index falls outside."""
    out = np.full_like(values, fill)
    n = len(values)
    if offset >= 0:
        out[offset:] = values[: n - offset]
    else:
        out[: n + offset] = values[-offset:]
    return out


def generate_clip(config: SynthConfig, speaker_index: int, clip_index: int) -> SyntheticClip:
    """Generate one clip in memory (nothing touches disk); the same arguments give identical arrays."""
    if not (0 <= speaker_index < config.speakers and 0 <= clip_index < config.clips):
        raise TfbenchError(
            f"synthetic data: clip ({speaker_index}, {clip_index}) outside "
            f"{config.speakers} speaker(s) x {config.clips} clip(s)"
        )
    spec, n = config.spec, config.n_frames
    identity = sample_identity(config.seed, speaker_index)
    audio = synthesize_speech(_rng(config, speaker_index, clip_index, 3), identity, config.n_samples,
                              config.sample_rate)  # fmt: skip
    energy, f1 = frame_features(audio, config.sample_rate, config.fps, n)
    opening, width = mouth_drive(energy, f1)
    offset = planted_offset(config, speaker_index, clip_index)
    opening, width = _shift(opening, offset, 0.0), _shift(width, offset, 1.0)

    motion_rng = _rng(config, speaker_index, clip_index, 4)
    jitter = motion_rng.uniform(-1, 1, size=2) * spec.centre_jitter * spec.height
    dx, dy, zoom = head_motion(motion_rng, n, config.fps, spec.motion * spec.height, spec.zoom)
    closure = blinks(motion_rng, n, config.fps)
    frames = np.empty((n, spec.height, spec.width, 3), dtype=np.uint8)
    frames[:] = identity.background
    for i in range(n):
        centre = (
            spec.centre[0] * spec.width + jitter[0] + dx[i],
            spec.centre[1] * spec.height + jitter[1] + dy[i],
        )
        draw_face(frames[i], identity, centre, spec.face_scale * spec.height * zoom[i], float(opening[i]),
                  float(width[i]), float(closure[i]))  # fmt: skip
    speaker = speaker_ids(config)[speaker_index]
    clip = spec.clip_id(clip_index)
    return SyntheticClip(
        speaker=speaker, clip=clip, relpath=spec.relpath(speaker, clip), identity=identity, frames=frames,
        audio=audio, fps=config.fps, sample_rate=config.sample_rate, offset_frames=offset, energy=energy,
        f1=f1, mouth_open=opening, mouth_width=width,
    )  # fmt: skip


def manifest_rows(config: SynthConfig) -> list[ManifestRow]:
    """The manifest rows `write_dataset` produces for `config`, computed without generating any clip."""
    spec, names = config.spec, speaker_ids(config)
    return [
        ManifestRow(
            path=spec.relpath(names[s], spec.clip_id(c)),
            layout=config.layout,
            speaker=names[s],
            clip=spec.clip_id(c),
            seconds=config.n_frames / config.fps,
            n_frames=config.n_frames,
            fps=config.fps,
            sample_rate=config.sample_rate,
            offset_frames=planted_offset(config, s, c),
            seed=config.seed,
        )
        for s in range(config.speakers)
        for c in range(config.clips)
    ]


def _write_manifest(out: Path, rows: list[ManifestRow]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    writer.writerows(row.as_strings() for row in rows)
    atomic_write_text(out / "manifest.csv", buffer.getvalue())


def read_manifest(out_dir: str | Path) -> list[ManifestRow]:
    """The rows of `OUT/manifest.csv` (an empty list when there is none)."""
    path = Path(out_dir) / "manifest.csv"
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    if records and tuple(records[0]) != MANIFEST_COLUMNS:
        raise TfbenchError(f"{path}: unexpected columns {tuple(records[0])}, expected {MANIFEST_COLUMNS}")
    try:
        return [
            ManifestRow(r["path"], r["layout"], r["speaker"], r["clip"], float(r["seconds"]),
                        int(r["n_frames"]), int(r["fps"]), int(r["sample_rate"]), int(r["offset_frames"]),
                        int(r["seed"]))
            for r in records
        ]  # fmt: skip
    except (TypeError, ValueError) as exc:
        raise TfbenchError(f"{path}: malformed row ({exc})") from exc


def write_dataset(
    out_dir: str | Path, config: SynthConfig, progress: Callable[[int, int], None] | None = None
) -> list[ManifestRow]:
    """Write every clip of `config` under `out_dir` in its layout, with `test.txt` and `manifest.csv`.

    Resumable: a clip whose mp4 exists and whose manifest row matches is skipped (videos are written
    atomically and the manifest is rewritten after each clip, so a killed run leaves no half-written
    file and the next run continues). `progress(done, total)` is called after each clip.
    Returns the manifest rows, in speaker-then-clip order.
    """
    from tfbench.media import write_video

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TfbenchError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from exc
    expected = manifest_rows(config)
    previous = {row.path: row.as_strings() for row in read_manifest(out)}
    done = [
        row for row in expected if previous.get(row.path) == row.as_strings() and (out / row.path).is_file()
    ]
    _write_manifest(out, done)
    finished = {row.path for row in done}
    for count, row in enumerate(expected, start=1):
        if row.path not in finished:
            speaker_index, clip_index = divmod(count - 1, config.clips)
            clip = generate_clip(config, speaker_index, clip_index)
            (out / row.path).parent.mkdir(parents=True, exist_ok=True)
            write_video(out / row.path, clip.frames, config.fps, clip.audio, config.sample_rate)
            finished.add(row.path)
            _write_manifest(out, [r for r in expected if r.path in finished])
        if progress is not None:
            progress(count, len(expected))
    spec, names = config.spec, speaker_ids(config)
    lines = [
        spec.split_line(names[s], spec.clip_id(c))
        for s in range(config.speakers)
        for c in range(config.clips)
    ]
    atomic_write_text(out / "test.txt", "".join(line + "\n" for line in lines))
    return expected
