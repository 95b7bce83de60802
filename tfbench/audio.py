"""Audio features of the reference talking-face projects, reproduced numerically in batched torch.

Two feature families feed the models and metrics, and each must match its reference to ~1e-4:

- ``wav2lip_mel`` is Wav2Lip's log-mel spectrogram (generator and expert-SyncNet input): 80 bands,
  80 steps per second, values in [-4, 4].
- ``syncnet_mfcc`` is the MFCC that syncnet_python computes with python_speech_features defaults
  (LSE-D / LSE-C): 13 coefficients, 100 steps per second, on the int16 sample scale.

Public API
----------
``wav2lip_mel(wav, sample_rate=16000)``      -> (80, T) or (B, 80, T), T = 1 + N // 200
``syncnet_mfcc(wav, sample_rate=16000)``     -> (13, T) or (B, 13, T), T = 1 + ceil((N - 400) / 160)
``resample(wav, src_rate, dst_rate)``        -> float32 numpy array (polyphase, scipy)
``mel_window_starts(n_frames, fps, n_mel_steps)`` -> int64 start step of each video frame's mel window
``mel_windows(mel, n_frames, fps)``           -> (n_frames, 80, 16) (or (B, n_frames, 80, 16))
plus the named constants below (``SAMPLE_RATE``, ``MEL_STEPS_PER_SECOND``, ``MEL_WINDOW``, ...).

Input convention: a 1-D waveform (N,) or an equal-length batch (B, N), as a numpy array or torch tensor,
either int16 (raw samples) or float in [-1, 1] (float = int16 / 32768, what librosa and PyAV give).
numpy in gives numpy out; a tensor in gives a tensor out on the same device. Features are computed in
float64 (on the input's device) and returned as float32. Another ``sample_rate`` is resampled to 16 kHz.
"""

from __future__ import annotations

import math
from functools import cache
from typing import TypeVar, cast, overload

import numpy as np
import numpy.typing as npt
import scipy.signal
import torch

from tfbench.errors import TfbenchError

SAMPLE_RATE = 16000
INT16_SCALE = 32768.0
PREEMPHASIS = 0.97
# Wav2Lip hparams.
N_MELS = 80
MEL_N_FFT = 800
MEL_HOP = 200
MEL_FMIN = 55.0
MEL_FMAX = 7600.0
MIN_LEVEL_DB = -100.0
REF_LEVEL_DB = 20.0
MAX_ABS_VALUE = 4.0
MEL_STEPS_PER_SECOND = SAMPLE_RATE // MEL_HOP  # 80
MEL_WINDOW = 16  # mel steps per video-frame window (0.2 s)
# python_speech_features.mfcc defaults, at 16 kHz (winlen 0.025 s, winstep 0.01 s, rounded half up).
MFCC_N_CEPS = 13
MFCC_N_FILTERS = 26
MFCC_N_FFT = 512
MFCC_WIN = 400
MFCC_HOP = 160
MFCC_LIFTER = 22
MFCC_STEPS_PER_SECOND = SAMPLE_RATE // MFCC_HOP  # 100
# A float waveform louder than this is almost certainly int16 samples stored as float: refuse it.
_MAX_FLOAT_AMPLITUDE = 2.0

Wave = np.ndarray | torch.Tensor
Features = npt.NDArray[np.float32] | torch.Tensor
# Bound (not constrained) so that callers holding `ndarray | Tensor` type-check too; numpy in -> numpy out.
WaveT = TypeVar("WaveT", bound=Wave)


# --------------------------------------------------------------------------- filterbanks (numpy, cached)
def _hz_to_slaney(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Slaney (Auditory Toolbox) mel scale: linear below 1 kHz, logarithmic above."""
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, math.log(6.4) / 27.0
    log_part = min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep
    return np.where(hz >= min_log_hz, log_part, hz / f_sp)


def _slaney_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Inverse of ``_hz_to_slaney``."""
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, math.log(6.4) / 27.0
    log_part = min_log_hz * np.exp(logstep * (np.maximum(mel, min_log_mel) - min_log_mel))
    return np.where(mel >= min_log_mel, log_part, mel * f_sp)


@cache
def _slaney_filterbank() -> npt.NDArray[np.float64]:
    """(80, 401) triangular mel weights with Slaney area normalisation (librosa's default ``filters.mel``)."""
    fft_freqs = np.linspace(0.0, SAMPLE_RATE / 2, MEL_N_FFT // 2 + 1)
    edges_mel = np.linspace(_hz_to_slaney(np.array(MEL_FMIN)), _hz_to_slaney(np.array(MEL_FMAX)), N_MELS + 2)
    edges = _slaney_to_hz(edges_mel)
    width = np.diff(edges)
    dist = edges[:, None] - fft_freqs[None, :]
    rising = -dist[:-2] / width[:-1, None]
    falling = dist[2:] / width[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


@cache
def _htk_filterbank() -> npt.NDArray[np.float64]:
    """(26, 257) python_speech_features filterbank: HTK-mel triangles on floor((nfft+1) * f / sr) bins."""
    # Same float expressions as the reference, so that the floor() lands on the same bins.
    high_mel = 2595 * np.log10(1 + (SAMPLE_RATE / 2) / 700.0)
    mel_points = np.linspace(0.0, high_mel, MFCC_N_FILTERS + 2)
    bins = np.floor((MFCC_N_FFT + 1) * (700 * (10 ** (mel_points / 2595.0) - 1)) / SAMPLE_RATE)
    i = np.arange(MFCC_N_FFT // 2 + 1, dtype=np.float64)[None, :]
    lo, mid, hi = bins[:-2, None], bins[1:-1, None], bins[2:, None]
    rising = np.where((i >= lo) & (i < mid), (i - lo) / np.maximum(mid - lo, 1.0), 0.0)
    falling = np.where((i >= mid) & (i < hi), (hi - i) / np.maximum(hi - mid, 1.0), 0.0)
    return rising + falling


@cache
def _dct_lifter_matrix() -> npt.NDArray[np.float64]:
    """(13, 26) orthonormal DCT-II rows (scipy ``norm='ortho'``) scaled by the sinusoidal lifter (L=22)."""
    k = np.arange(MFCC_N_CEPS, dtype=np.float64)[:, None]
    n = np.arange(MFCC_N_FILTERS, dtype=np.float64)[None, :]
    dct = np.cos(np.pi * k * (2 * n + 1) / (2 * MFCC_N_FILTERS)) * math.sqrt(2.0 / MFCC_N_FILTERS)
    dct[0] /= math.sqrt(2.0)
    lift = 1 + (MFCC_LIFTER / 2.0) * np.sin(np.pi * np.arange(MFCC_N_CEPS) / MFCC_LIFTER)
    return dct * lift[:, None]


def _const(array: npt.NDArray[np.float64], like: torch.Tensor) -> torch.Tensor:
    """A cached numpy constant as a float64 tensor on ``like``'s device."""
    return torch.tensor(array, dtype=torch.float64, device=like.device)


# --------------------------------------------------------------------------- input handling
def _check_rate(rate: int, what: str) -> None:
    """Sample rates are positive integers."""
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or rate <= 0:
        raise TfbenchError(f"{what} must be a positive integer number of Hz, got {rate!r}")


def _as_float64(wav: Wave) -> torch.Tensor:
    """Validate a waveform and return it as a (B, N) float64 tensor in the [-1, 1] convention."""
    if not isinstance(wav, np.ndarray | torch.Tensor):
        raise TfbenchError(f"waveform must be a numpy array or torch tensor, got {type(wav).__name__}")
    if wav.ndim not in (1, 2):
        raise TfbenchError(f"waveform must be 1-D (N,) or 2-D (B, N), got shape {tuple(wav.shape)}")
    if wav.shape[-1] == 0 or wav.shape[0] == 0:
        raise TfbenchError(f"waveform is empty (shape {tuple(wav.shape)})")
    if isinstance(wav, np.ndarray):
        if wav.dtype != np.int16 and wav.dtype.kind != "f":
            raise TfbenchError(f"waveform dtype must be int16 or floating point, got {wav.dtype}")
        # A copy: float64 also covers float16 / longdouble, and read-only arrays are fine.
        tensor = torch.from_numpy(np.array(wav, dtype=np.int16 if wav.dtype == np.int16 else np.float64))
    else:
        tensor = wav
    if tensor.dtype == torch.int16:
        x = tensor.to(torch.float64) / INT16_SCALE
    elif tensor.is_floating_point():
        x = tensor.to(torch.float64)
        peak = float(x.abs().amax())  # one device sync; NaN and inf propagate into the peak
        if not math.isfinite(peak):
            raise TfbenchError("waveform contains NaN or infinite samples")
        if peak > _MAX_FLOAT_AMPLITUDE:
            raise TfbenchError(
                f"float waveform peaks at {peak:g}; floats must be in [-1, 1] (pass int16 samples as int16)"
            )
    else:
        raise TfbenchError(f"waveform dtype must be int16 or floating point, got {tensor.dtype}")
    return x.reshape(-1, x.shape[-1])


def _prepare(wav: Wave, sample_rate: int) -> torch.Tensor:
    """(B, N) float64 at 16 kHz on the input's device, resampling on CPU when needed."""
    _check_rate(sample_rate, "sample_rate")
    x = _as_float64(wav)
    if sample_rate != SAMPLE_RATE:
        y = _resample64(x.detach().cpu().numpy(), int(sample_rate), SAMPLE_RATE)
        x = torch.from_numpy(y).to(x.device)
    return x


def _finish(features: torch.Tensor, like: Wave) -> Features:
    """float32 result in the caller's kind and shape (batch dimension dropped for a 1-D input)."""
    out = features.to(torch.float32)
    if like.ndim == 1:
        out = out[0]
    return out.cpu().numpy() if isinstance(like, np.ndarray) else out


def _preemphasis(x: torch.Tensor) -> torch.Tensor:
    """y[n] = x[n] - 0.97 x[n-1] with x[-1] = 0 (scipy ``lfilter([1, -0.97], [1])``)."""
    return torch.cat([x[:, :1], x[:, 1:] - PREEMPHASIS * x[:, :-1]], dim=1)


def _reflect_indices(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices of numpy's ``pad(mode='reflect')`` (edge not repeated), valid even when pad >= n."""
    i = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    j = torch.remainder(i, period)
    return torch.where(j >= n, period - j, j)


# --------------------------------------------------------------------------- features
def _wav2lip_mel_batch(x: torch.Tensor) -> torch.Tensor:
    """(B, N) float64 16 kHz in [-1, 1] -> (B, 80, 1 + N // 200) float64, Wav2Lip's ``melspectrogram``."""
    y = _preemphasis(x)
    y = y[:, _reflect_indices(y.shape[1], MEL_N_FFT // 2, y.device)]  # librosa 0.7 center=True padding
    frames = y.unfold(1, MEL_N_FFT, MEL_HOP)  # (B, T, 800)
    window = torch.hann_window(MEL_N_FFT, periodic=True, dtype=torch.float64, device=x.device)
    magnitude = torch.fft.rfft(frames * window, n=MEL_N_FFT).abs()  # (B, T, 401)
    mel = torch.matmul(_const(_slaney_filterbank(), x), magnitude.transpose(1, 2))  # (B, 80, T)
    min_level = 10.0 ** (MIN_LEVEL_DB / 20.0)
    db = 20.0 * torch.log10(torch.clamp(mel, min=min_level)) - REF_LEVEL_DB
    scaled = 2 * MAX_ABS_VALUE * ((db - MIN_LEVEL_DB) / -MIN_LEVEL_DB) - MAX_ABS_VALUE
    return torch.clamp(scaled, -MAX_ABS_VALUE, MAX_ABS_VALUE)


def _syncnet_mfcc_batch(x: torch.Tensor) -> torch.Tensor:
    """(B, N) float64 16 kHz int16-scale samples -> (B, 13, T) float64, python_speech_features ``mfcc``."""
    n = x.shape[1]
    n_frames = 1 if n <= MFCC_WIN else 1 + -(-(n - MFCC_WIN) // MFCC_HOP)
    padded_len = (n_frames - 1) * MFCC_HOP + MFCC_WIN
    y = torch.nn.functional.pad(_preemphasis(x), (0, padded_len - n))  # zero-fill the last frame
    frames = y.unfold(1, MFCC_WIN, MFCC_HOP)  # (B, T, 400), rectangular window
    power = torch.fft.rfft(frames, n=MFCC_N_FFT).abs().square() / MFCC_N_FFT  # (B, T, 257)
    eps = float(np.finfo(np.float64).eps)
    energy = power.sum(dim=2)
    energy = torch.where(energy == 0, eps, energy)
    bands = torch.matmul(power, _const(_htk_filterbank(), x).T)  # (B, T, 26)
    bands = torch.where(bands == 0, eps, bands)
    ceps = torch.matmul(torch.log(bands), _const(_dct_lifter_matrix(), x).T)  # (B, T, 13)
    ceps = torch.cat([torch.log(energy)[:, :, None], ceps[:, :, 1:]], dim=2)  # c0 := log frame energy
    return ceps.transpose(1, 2)


@overload
def wav2lip_mel(wav: np.ndarray, sample_rate: int = ...) -> npt.NDArray[np.float32]: ...
@overload
def wav2lip_mel(wav: torch.Tensor, sample_rate: int = ...) -> torch.Tensor: ...
def wav2lip_mel(wav: Wave, sample_rate: int = SAMPLE_RATE) -> Features:
    """Wav2Lip's normalised log-mel spectrogram, (80, T) or (B, 80, T) float32 in [-4, 4].

    Preemphasis 0.97, |STFT| (n_fft 800, hop 200, periodic Hann, reflect-padded centre frames), 80 Slaney
    mel bands 55-7600 Hz, 20*log10(max(1e-5, x)) - 20, then clip(8 * (S + 100) / 100 - 4, -4, 4).
    int16 input is divided by 32768 first (what librosa.load gives Wav2Lip).
    """
    return _finish(_wav2lip_mel_batch(_prepare(wav, sample_rate)), wav)


@overload
def syncnet_mfcc(wav: np.ndarray, sample_rate: int = ...) -> npt.NDArray[np.float32]: ...
@overload
def syncnet_mfcc(wav: torch.Tensor, sample_rate: int = ...) -> torch.Tensor: ...
def syncnet_mfcc(wav: Wave, sample_rate: int = SAMPLE_RATE) -> Features:
    """syncnet_python's MFCC, (13, T) or (B, 13, T) float32: ``python_speech_features.mfcc(int16, 16000).T``.

    syncnet_python feeds the raw int16 sample values to ``mfcc``; float input in [-1, 1] is therefore
    scaled by 32768 so that both kinds give the reference numbers.
    """
    return _finish(_syncnet_mfcc_batch(_prepare(wav, sample_rate) * INT16_SCALE), wav)


# --------------------------------------------------------------------------- resampling
def _resample64(x: npt.NDArray[np.float64], src_rate: int, dst_rate: int) -> npt.NDArray[np.float64]:
    """Polyphase resampling along the last axis with the rate ratio reduced by its gcd."""
    if src_rate == dst_rate:
        return x.copy()
    g = math.gcd(src_rate, dst_rate)
    return np.asarray(scipy.signal.resample_poly(x, dst_rate // g, src_rate // g, axis=-1), dtype=np.float64)


def resample(wav: Wave, src_rate: int, dst_rate: int) -> npt.NDArray[np.float32]:
    """Resample a (N,) or (B, N) waveform from ``src_rate`` to ``dst_rate`` Hz; float32 numpy in [-1, 1] out.

    Polyphase filtering (scipy ``resample_poly``, its default Kaiser window); int16 input is scaled to
    [-1, 1] first so that the result follows the float convention of this module.
    """
    _check_rate(src_rate, "src_rate")
    _check_rate(dst_rate, "dst_rate")
    x = _as_float64(wav).detach().cpu().numpy()
    out = _resample64(x, int(src_rate), int(dst_rate)).astype(np.float32)
    return out[0] if wav.ndim == 1 else out


# --------------------------------------------------------------------------- per-video-frame mel windows
def mel_window_starts(n_frames: int, fps: float, n_mel_steps: int) -> npt.NDArray[np.int64]:
    """First mel step of each video frame's 16-step window: int(i * (80.0 / fps)), clamped to the end.

    This is Wav2Lip inference's formula; for 25 and 29.97 fps it equals int(80 * i / fps) and the training
    code's int(80. * (i / fps)) for every i < 100000 (checked in the tests), so the three never disagree in
    practice. A window running past the mel takes its last 16 steps, as Wav2Lip inference does (Wav2Lip then
    stops; here every requested frame gets the clamped window).
    """
    if n_mel_steps < MEL_WINDOW:
        raise TfbenchError(
            f"audio too short: {n_mel_steps} mel steps, a window needs {MEL_WINDOW} "
            f"({MEL_WINDOW / MEL_STEPS_PER_SECOND:.2f} s of audio)"
        )
    if n_frames < 0:
        raise TfbenchError(f"n_frames must be >= 0, got {n_frames}")
    if not math.isfinite(fps) or fps <= 0:
        raise TfbenchError(f"fps must be a positive number, got {fps!r}")
    starts = (np.arange(n_frames, dtype=np.float64) * (float(MEL_STEPS_PER_SECOND) / fps)).astype(np.int64)
    return np.minimum(starts, n_mel_steps - MEL_WINDOW)


def mel_windows(mel: WaveT, n_frames: int, fps: float) -> WaveT:
    """Gather every video frame's (80, 16) mel window: (80, T) -> (n_frames, 80, 16).

    A batch (B, 80, T) gives (B, n_frames, 80, 16). One batched gather (no per-window loop); numpy in gives
    numpy out, a tensor stays on its device.
    """
    if mel.ndim not in (2, 3) or mel.shape[-2] != N_MELS:
        raise TfbenchError(f"mel must be (80, T) or (B, 80, T), got shape {tuple(mel.shape)}")
    starts = mel_window_starts(n_frames, fps, int(mel.shape[-1]))
    index = starts[:, None] + np.arange(MEL_WINDOW)[None, :]  # (n_frames, 16)
    if isinstance(mel, np.ndarray):
        return cast(WaveT, np.moveaxis(mel[..., index], -2, -3))
    gathered = mel[..., torch.from_numpy(index).to(mel.device)]
    return cast(WaveT, torch.movedim(gathered, -2, -3))
