"""A synthetic speaker: who they are (`Identity`), how they look (one drawn frame), how they sound
(`synthesize_speech`), and how their lips follow the sound (`frame_features`, `mouth_drive`).

The faces are flat-shaded cartoons drawn with `skimage.draw`. Two properties matter to the benchmark:
identities differ in face shape, skin, eyes, hair, lips, clothes and background (so identity metrics have
something to tell apart), and the mouth interior is painted in one reserved colour, `MOUTH_INTERIOR`, that
no other colour of any identity comes near (at least `MIN_COLOUR_DISTANCE` away in every identity's
palette). The mouth opening can therefore be measured in decoded, lossy video by counting pixels close to
that colour (`mouth_interior_pixels`), with no face detector. Nothing here touches disk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_erosion, uniform_filter1d
from skimage.draw import ellipse

RGB = tuple[int, int, int]

MOUTH_INTERIOR: RGB = (80, 10, 20)
"""The colour of the open mouth's inside; reserved: no other face part or background uses a colour near it."""

MIN_COLOUR_DISTANCE = 60
"""Every other colour an identity uses differs from `MOUTH_INTERIOR` by at least this in some channel."""

_PUPIL: RGB = (10, 10, 10)
_SCLERA: RGB = (240, 240, 235)
_SKINS: tuple[RGB, ...] = ((245, 205, 180), (232, 180, 150), (205, 150, 115), (170, 118, 85), (135, 92, 64))
_HAIRS: tuple[RGB, ...] = ((15, 15, 18), (120, 80, 50), (225, 195, 130), (165, 75, 40), (170, 170, 175))
_HAIR_STYLES: tuple[str, ...] = ("short", "long", "curly", "bun", "bald")
_IRISES: tuple[RGB, ...] = ((110, 75, 40), (60, 110, 170), (70, 130, 80), (120, 130, 140))
_LIPS: tuple[RGB, ...] = ((200, 100, 110), (185, 90, 100), (215, 125, 120), (175, 95, 95))
_BACKGROUNDS: tuple[RGB, ...] = (
    (70, 90, 130),
    (200, 200, 190),
    (90, 120, 90),
    (150, 130, 160),
    (50, 70, 90),
    (180, 150, 110),
)
_CLOTHES: tuple[RGB, ...] = ((40, 40, 90), (150, 70, 150), (30, 90, 60), (200, 200, 205), (90, 90, 95))


def _scaled(colour: RGB, factor: float) -> RGB:
    r, g, b = (min(255, round(c * factor)) for c in colour)
    return (r, g, b)


@dataclass(frozen=True)
class Identity:
    """The look and voice of one synthetic speaker; the same (seed, index) always gives the same identity.

    Geometry is relative to the face half-height: `face_aspect` is half-width / half-height,
    `mouth_width` the neutral mouth half-width, `eye_aspect` the open eye's height / width.
    `pitch_hz` and `formant_scale` shape the voice, so audio, too, differs between speakers.
    """

    index: int
    face_aspect: float
    eye_aspect: float
    mouth_width: float
    skin: RGB
    hair: RGB
    hair_style: str
    iris: RGB
    lips: RGB
    background: RGB
    clothes: RGB
    pitch_hz: float
    formant_scale: float

    @property
    def skin_shade(self) -> RGB:
        """Neck, ears and nose: the skin a little darker."""
        return _scaled(self.skin, 0.88)

    @property
    def lip_seam(self) -> RGB:
        """The line between closed lips."""
        return _scaled(self.lips, 0.8)

    def colours(self) -> list[RGB]:
        """Every colour this identity paints, except `MOUTH_INTERIOR`: the set tests check for separation."""
        return [
            _PUPIL,
            _SCLERA,
            self.skin,
            self.skin_shade,
            self.hair,
            self.iris,
            self.lips,
            self.lip_seam,
            self.background,
            self.clothes,
        ]


def _pick(seed: int, index: int, table: tuple[RGB, ...] | tuple[str, ...], salt: int) -> int:
    """Index into `table` through a per-seed permutation, so consecutive speakers never share an entry
    (until the table is exhausted) while different seeds give different assignments."""
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1_000_000 + salt,))).permutation(
        len(table)
    )
    return int(order[index % len(table)])


def sample_identity(seed: int, index: int) -> Identity:
    """The identity of speaker `index` under `seed` (independent of layout, clip count and duration)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, 0)))
    low_voice = bool(rng.random() < 0.5)
    return Identity(
        index=index,
        face_aspect=float(rng.uniform(0.68, 0.86)),
        eye_aspect=float(rng.uniform(0.45, 0.75)),
        mouth_width=float(rng.uniform(0.28, 0.36)),
        skin=_SKINS[_pick(seed, index, _SKINS, 0)],
        hair=_HAIRS[_pick(seed, index, _HAIRS, 1)],
        hair_style=_HAIR_STYLES[_pick(seed, index, _HAIR_STYLES, 2)],
        iris=_IRISES[_pick(seed, index, _IRISES, 3)],
        lips=_LIPS[_pick(seed, index, _LIPS, 4)],
        background=_BACKGROUNDS[_pick(seed, index, _BACKGROUNDS, 5)],
        clothes=_CLOTHES[_pick(seed, index, _CLOTHES, 6)],
        pitch_hz=float(rng.uniform(100, 140) if low_voice else rng.uniform(170, 220)),
        formant_scale=float(rng.uniform(0.95, 1.02) if low_voice else rng.uniform(1.08, 1.16)),
    )


def head_motion(
    rng: np.random.Generator, n_frames: int, fps: float, amplitude_px: float, zoom: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth per-frame head motion: (dx, dy) in pixels within about +-amplitude_px, and a scale factor
    within 1 +- zoom. Sums of two slow sinusoids with random periods (1.5-5 s) and phases."""
    t = np.arange(n_frames) / fps

    def wave(amplitude: float) -> np.ndarray:
        periods = rng.uniform(1.5, 5.0, size=2)
        phases = rng.uniform(0, 2 * np.pi, size=2)
        weights = np.array([0.65, 0.35])
        parts = np.sin(2 * np.pi * t[:, None] / periods + phases) * weights
        return np.asarray(amplitude * parts.sum(axis=1))

    return wave(amplitude_px), wave(0.6 * amplitude_px), 1.0 + wave(zoom)


def blinks(rng: np.random.Generator, n_frames: int, fps: float) -> np.ndarray:
    """Per-frame eyelid closure in [0, 1]: a blink (3 frames: half, closed, half) every 2-5 seconds."""
    closure = np.zeros(n_frames)
    frame = int(rng.uniform(0.5, 3.0) * fps)
    while frame < n_frames:
        for step, value in enumerate((0.5, 1.0, 0.5)):
            if frame + step < n_frames:
                closure[frame + step] = value
        frame += int(rng.uniform(2.0, 5.0) * fps)
    return closure


def _fill(
    canvas: np.ndarray,
    centre: tuple[float, float],
    radii: tuple[float, float],
    colour: RGB,
    rotation: float = 0.0,
    below_row: float | None = None,
) -> None:
    """Paint an ellipse (centre = (row, col), radii = (rows, cols)); optionally only rows < below_row."""
    rr, cc = ellipse(centre[0], centre[1], radii[0], radii[1], shape=canvas.shape[:2], rotation=rotation)
    if below_row is not None:
        keep = rr < below_row
        rr, cc = rr[keep], cc[keep]
    canvas[rr, cc] = colour


def _draw_eye(
    canvas: np.ndarray, ident: Identity, row: float, col: float, half_width: float, closure: float
) -> None:
    half_height = ident.eye_aspect * half_width * (1.0 - closure)
    if half_height < 0.8:
        _fill(canvas, (row, col), (0.7, half_width), _PUPIL)
        return
    rr, cc = ellipse(row, col, half_height, half_width, shape=canvas.shape[:2])
    distance = np.hypot(rr - row, cc - col)
    iris_radius = 0.5 * half_width
    canvas[rr, cc] = _SCLERA
    iris = distance < iris_radius
    canvas[rr[iris], cc[iris]] = ident.iris
    pupil = distance < 0.45 * iris_radius
    canvas[rr[pupil], cc[pupil]] = _PUPIL


def _draw_hair(canvas: np.ndarray, ident: Identity, cy: float, cx: float, s: float, a: float) -> None:
    """The hair in front of the forehead (the part behind the head is drawn before the face)."""
    if ident.hair_style == "bald":
        for side in (-1, 1):
            _fill(canvas, (cy - 0.25 * s, cx + side * 0.95 * a), (0.25 * s, 0.1 * a), ident.hair)
        return
    fringe = 0.45 if ident.hair_style == "long" else 0.55
    _fill(canvas, (cy - 0.2 * s, cx), (0.95 * s, 1.07 * a), ident.hair, below_row=cy - fringe * s)


def draw_face(
    canvas: np.ndarray,
    ident: Identity,
    centre: tuple[float, float],
    scale: float,
    mouth_open: float,
    mouth_width: float,
    eye_closure: float = 0.0,
) -> None:
    """Paint one face into `canvas` (H, W, 3 uint8, background already filled), in place.

    `centre` is the face centre (x, y) in pixels and `scale` the face half-height in pixels. `mouth_open`
    in [0, 1] sets the interior's half-height (0 = closed lips, 1 = 0.2 * scale); `mouth_width` multiplies
    the identity's neutral mouth width. The interior is painted in `MOUTH_INTERIOR`, its area grows with
    both, and a closed mouth shows no interior pixel at all.
    """
    cx, cy = centre
    s = scale
    a = ident.face_aspect * s
    _fill(canvas, (cy + 1.95 * s, cx), (0.95 * s, 1.6 * s), ident.clothes)
    _fill(canvas, (cy + 0.95 * s, cx), (0.55 * s, 0.38 * a), ident.skin_shade)
    if ident.hair_style == "long":
        _fill(canvas, (cy + 0.25 * s, cx), (1.2 * s, 1.25 * a), ident.hair)
    elif ident.hair_style == "curly":
        _fill(canvas, (cy - 0.2 * s, cx), (1.15 * s, 1.4 * a), ident.hair)
    elif ident.hair_style == "bun":
        _fill(canvas, (cy - 1.05 * s, cx), (0.35 * s, 0.35 * s), ident.hair)
    for side in (-1, 1):
        _fill(canvas, (cy - 0.02 * s, cx + side * 0.98 * a), (0.2 * s, 0.12 * a), ident.skin_shade)
    _fill(canvas, (cy, cx), (s, a), ident.skin)
    _draw_hair(canvas, ident, cy, cx, s, a)
    for side in (-1, 1):
        brow_colour = ident.hair if ident.hair_style != "bald" else _HAIRS[0]
        _fill(canvas, (cy - 0.4 * s, cx + side * 0.38 * a), (0.045 * s, 0.22 * a), brow_colour, side * 0.12)
        _draw_eye(canvas, ident, cy - 0.2 * s, cx + side * 0.38 * a, 0.2 * a, eye_closure)
    _fill(canvas, (cy + 0.15 * s, cx), (0.12 * s, 0.09 * a), ident.skin_shade)

    mouth_row = cy + 0.52 * s
    half_width = ident.mouth_width * s * mouth_width
    half_height = float(np.clip(mouth_open, 0.0, 1.0)) * 0.2 * s
    lip = max(1.5, 0.06 * s)
    _fill(canvas, (mouth_row, cx), (half_height + lip, half_width + 0.5 * lip), ident.lips)
    if half_height >= 0.5:
        _fill(canvas, (mouth_row, cx), (half_height, half_width), MOUTH_INTERIOR)
    else:
        _fill(canvas, (mouth_row, cx), (0.6, 0.95 * half_width), ident.lip_seam)


# ---- the voice, and how the lips follow it ----

_VOWELS = np.array(
    [[730, 1090, 2440], [530, 1840, 2480], [270, 2290, 3010], [570, 840, 2410], [300, 870, 2240],
     [660, 1720, 2410], [490, 1350, 1690]], dtype=np.float64,
)  # fmt: skip
_BANDWIDTHS = np.array([80.0, 100.0, 150.0])
_FORMANT_GAINS = np.array([1.0, 0.6, 0.3])


def _smooth(values: np.ndarray, width: float) -> np.ndarray:
    """Two passes of a moving average along axis 0 (a cheap, O(n) near-Gaussian low-pass)."""
    size = max(1, int(width))
    return np.asarray(uniform_filter1d(uniform_filter1d(values, size, axis=0), size, axis=0))


def _raised_cosine(n: int) -> np.ndarray:
    return np.asarray(0.5 - 0.5 * np.cos(np.pi * np.arange(n) / max(n, 1)))


def synthesize_speech(
    rng: np.random.Generator, identity: Identity, n_samples: int, sample_rate: int
) -> np.ndarray:
    """Speech-like mono audio, float32 in [-1, 1]: words of 1-3 syllables separated by silent pauses.

    The source is a sum of harmonics of a moving pitch (1/k tilt, like a glottal pulse train after lip
    radiation); each harmonic is weighted by three resonances centred on the syllable's formants, which
    glide smoothly between syllables.
    """
    sr = sample_rate
    duration = n_samples / sr
    envelope = np.zeros(n_samples)
    bursts = np.zeros(n_samples)
    formants = np.tile(np.array([500.0, 1500.0, 2500.0]) * identity.formant_scale, (n_samples, 1))
    accent = np.zeros(n_samples)
    position = rng.uniform(0.25, 1.0) * min(0.35, 0.25 * duration)
    while position < duration:
        for _ in range(int(rng.integers(1, 4))):
            length, amplitude = rng.uniform(0.12, 0.28), rng.uniform(0.55, 1.0)
            attack, decay = int(rng.uniform(0.015, 0.04) * sr), int(rng.uniform(0.04, 0.09) * sr)
            start, stop = int(position * sr), int((position + length) * sr)
            if start >= n_samples:
                break
            shape = np.ones(stop - start)
            shape[:attack] = _raised_cosine(attack)[: len(shape)]
            shape[len(shape) - min(decay, len(shape)) :] = _raised_cosine(decay)[::-1][-len(shape) :]
            end = min(stop, n_samples)
            envelope[start:end] += amplitude * shape[: end - start]
            formants[start:end] = _VOWELS[int(rng.integers(0, len(_VOWELS)))] * identity.formant_scale
            accent[start:end] = rng.uniform(-0.08, 0.12)
            if rng.random() < 0.5:  # a plosive/fricative burst just before the vowel
                onset = max(0, start - int(0.03 * sr))
                bursts[onset:start] = 0.25 * amplitude
            position += length + rng.uniform(0.0, 0.03)
        position += rng.uniform(0.12, 0.45)
    formants = _smooth(formants, 0.025 * sr)
    t = np.arange(n_samples) / sr
    wobble = 0.08 * np.sin(2 * np.pi * t / rng.uniform(1.2, 2.5) + rng.uniform(0, 2 * np.pi))
    f0 = np.clip(identity.pitch_hz * (1 + _smooth(accent, 0.08 * sr) + wobble), 90.0, 250.0)
    phase = 2 * np.pi * np.cumsum(f0) / sr

    voiced = np.flatnonzero(envelope > 1e-4)
    harmonics = np.zeros(n_samples)
    f0v, phv, fv = f0[voiced], phase[voiced], formants[voiced]
    for k in range(1, 4000 // 90 + 1):
        fk = k * f0v
        response = (_FORMANT_GAINS / np.sqrt(1 + ((fk[:, None] - fv) / (_BANDWIDTHS / 2)) ** 2)).sum(axis=1)
        harmonics[voiced] += np.where(fk < 4000, response / k, 0.0) * np.sin(k * phv)
    speech = harmonics * envelope
    speech /= max(float(np.abs(speech).max()), 1e-9)
    noise = rng.standard_normal(n_samples)
    speech += 0.03 * envelope * noise + bursts * np.diff(noise, prepend=0.0)
    speech *= 0.7 / max(float(np.abs(speech).max()), 1e-9)
    speech += 0.002 * rng.standard_normal(n_samples)
    return np.clip(speech, -1.0, 1.0).astype(np.float32)


def frame_features(
    audio: np.ndarray, sample_rate: int, fps: float, n_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per video frame: RMS energy and the 200-1000 Hz spectral centroid (an F1-like feature, Hz) of the
    audio samples [i/fps, (i+1)/fps)."""
    bounds = np.round(np.arange(n_frames + 1) * sample_rate / fps).astype(np.int64)
    energy, f1 = np.zeros(n_frames), np.zeros(n_frames)
    n_fft = 2048
    freqs = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    band = (freqs >= 200) & (freqs <= 1000)
    for i in range(n_frames):
        segment = audio[bounds[i] : bounds[i + 1]].astype(np.float64)
        energy[i] = np.sqrt(np.mean(segment**2)) if len(segment) else 0.0
        power = np.abs(np.fft.rfft(segment * np.hanning(len(segment)), n_fft)[band]) ** 2
        f1[i] = float((freqs[band] * power).sum() / max(power.sum(), 1e-12))
    return energy, f1


def mouth_drive(energy: np.ndarray, f1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mouth opening in [0, 1] from energy (relative to the clip's loudest frame, with a small dead zone
    so silence shows closed lips) and a width factor in [0.7, 1.3] from f1 (neutral while silent)."""
    opening = np.clip((energy / max(0.9 * float(energy.max()), 1e-6) - 0.06) / 0.94, 0.0, 1.0)
    f1_norm = np.clip((f1 - 350.0) / 400.0, 0.0, 1.0)
    width = 1.0 + 0.3 * (2 * f1_norm - 1) * np.minimum(1.0, 3 * opening)
    return opening, width


def mouth_interior_pixels(frames: np.ndarray, tolerance: int = 40) -> np.ndarray:
    """Per frame, how many pixels lie, with all 8 neighbours, within `tolerance` (every channel) of
    `MOUTH_INTERIOR`: a detector-free measure of the mouth opening that survives H.264.

    The neighbourhood condition matters: yuv420p keeps luma sharp but halves chroma resolution, so where a
    dark area (black hair, dark clothes) meets a warm one (skin, lips) a 1-2 pixel fringe can decode close
    to the mouth colour. The 3x3 erosion removes such fringes while an open mouth keeps its core, so a
    closed mouth counts 0. `frames` is (T, H, W, 3) uint8 RGB; returns int64 (T,).
    """
    target = np.asarray(MOUTH_INTERIOR, dtype=np.int16)
    close = np.abs(np.asarray(frames).astype(np.int16) - target).max(axis=-1) <= tolerance
    core = binary_erosion(close, structure=np.ones((1, 3, 3), dtype=bool))
    return np.asarray(core.reshape(len(core), -1).sum(axis=1), dtype=np.int64)
