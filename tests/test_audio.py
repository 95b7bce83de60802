"""tfbench.audio against its references: librosa for Wav2Lip's mel, python_speech_features for the MFCC."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import scipy.signal
import torch

from tfbench import audio
from tfbench.errors import TfbenchError

librosa = pytest.importorskip("librosa")
psf = pytest.importorskip("python_speech_features")

SR = 16000
TOL = 1e-4


def speech_like(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Deterministic voiced-speech stand-in: harmonics of a moving pitch, syllable-rate AM, a little noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR) + 123  # not a multiple of any hop
    t = np.arange(n) / SR
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    sig = sum((0.3 / k) * np.sin(k * phase) for k in range(1, 25))
    sig = sig * 0.5 * (1 + np.sin(2 * np.pi * 3 * t)) + 0.003 * rng.standard_normal(n)
    return np.asarray(0.8 * sig / np.abs(sig).max())


@pytest.fixture(scope="module")
def pcm16() -> np.ndarray:
    return np.round(speech_like() * 32767).astype(np.int16)


def ref_mel(wav: np.ndarray) -> np.ndarray:
    """Wav2Lip's melspectrogram written with librosa, as Wav2Lip's audio.py does."""
    y = scipy.signal.lfilter([1, -0.97], [1], wav.astype(np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_fft > len warnings for short inputs
        spec = librosa.stft(
            y, n_fft=800, hop_length=200, win_length=800, center=True, pad_mode="reflect", window="hann"
        )
    basis = librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600)
    s = 20 * np.log10(np.maximum(1e-5, np.dot(basis, np.abs(spec)))) - 20
    return np.clip(8 * ((s + 100) / 100) - 4, -4, 4)


def ref_mfcc(pcm: np.ndarray) -> np.ndarray:
    """syncnet_python: python_speech_features.mfcc on the raw int16 samples, transposed to (13, T)."""
    return np.asarray(psf.mfcc(pcm.astype(np.float64), SR).T)


def max_err(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a.astype(np.float64) - b).max())


# ----------------------------------------------------------------------------- Wav2Lip mel
@pytest.mark.parametrize("kind", ["float", "silence", "int16", "short"])
def test_wav2lip_mel_matches_librosa(pcm16: np.ndarray, kind: str) -> None:
    floats = pcm16.astype(np.float64) / 32768
    wav, ref_in = {
        "float": (floats, floats),
        "silence": (np.zeros(SR), np.zeros(SR)),
        "int16": (pcm16, floats),
        "short": (floats[1000:1300], floats[1000:1300]),  # shorter than n_fft: reflect padding wraps
    }[kind]
    ref = ref_mel(ref_in)
    got = audio.wav2lip_mel(wav)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    assert got.shape == (80, 1 + len(wav) // 200) == ref.shape
    assert max_err(got, ref) < TOL
    if kind == "silence":
        assert np.all(got == -4.0)
    else:
        assert got.max() > 0 and got.min() >= -4.0  # a real signal, not a clipped floor


def test_mel_rate_is_80_steps_per_second() -> None:
    assert audio.MEL_STEPS_PER_SECOND == 80
    assert audio.wav2lip_mel(np.zeros(10 * SR, np.float32)).shape == (80, 801)


# ----------------------------------------------------------------------------- syncnet MFCC
@pytest.mark.parametrize("kind", ["int16", "float32", "float64"])
def test_syncnet_mfcc_matches_python_speech_features(pcm16: np.ndarray, kind: str) -> None:
    wav = {"int16": pcm16, "float32": pcm16.astype(np.float32) / 32768, "float64": pcm16 / 32768.0}[kind]
    ref = ref_mfcc(pcm16)
    got = audio.syncnet_mfcc(wav)
    assert got.dtype == np.float32
    assert got.shape == (13, 1 + int(np.ceil((len(pcm16) - 400) / 160))) == ref.shape
    assert np.abs(ref).max() > 20  # int16-scale values: the scaling really is exercised
    assert max_err(got, ref) < TOL


@pytest.mark.parametrize("length", [1, 399, 400, 401, 561, 16000])
def test_syncnet_mfcc_frame_count_and_padding(pcm16: np.ndarray, length: int) -> None:
    ref = ref_mfcc(pcm16[:length])
    assert max_err(audio.syncnet_mfcc(pcm16[:length]), ref) < TOL


def test_syncnet_mfcc_silence_uses_eps_floor() -> None:
    silent = np.zeros(SR, np.int16)
    got = audio.syncnet_mfcc(silent)
    assert max_err(got, ref_mfcc(silent)) < TOL
    assert np.allclose(got[0], np.log(np.finfo(float).eps))


def test_mfcc_rate_is_100_steps_per_second() -> None:
    assert audio.MFCC_STEPS_PER_SECOND == 100
    assert audio.syncnet_mfcc(np.zeros(SR + 240, np.int16)).shape == (13, 100)


# ----------------------------------------------------------------------------- batches, kinds, rates
@pytest.mark.parametrize("fn", [audio.wav2lip_mel, audio.syncnet_mfcc])
def test_batch_equals_items_and_kind_is_kept(fn: Callable[..., Any], pcm16: np.ndarray) -> None:
    batch = np.stack([pcm16[:8000], pcm16[8000:16000], pcm16[-8000:]])
    items = [fn(row) for row in batch]
    got = fn(batch)
    assert isinstance(got, np.ndarray) and got.shape == (3, *items[0].shape)
    for b, item in enumerate(items):
        np.testing.assert_array_equal(got[b], item)

    tensor_out = fn(torch.from_numpy(batch))
    assert isinstance(tensor_out, torch.Tensor) and tensor_out.dtype == torch.float32
    assert tensor_out.device == torch.device("cpu")
    np.testing.assert_allclose(tensor_out.numpy(), got, atol=1e-5, rtol=0)
    single = fn(torch.from_numpy(batch[0]).float() / 32768)
    assert isinstance(single, torch.Tensor) and single.shape == items[0].shape
    np.testing.assert_allclose(single.numpy(), items[0], atol=TOL, rtol=0)


def test_other_sample_rate_is_resampled_first(pcm16: np.ndarray) -> None:
    wav44 = audio.resample(pcm16, SR, 44100)
    via_rate = audio.wav2lip_mel(wav44, sample_rate=44100)
    direct = audio.wav2lip_mel(audio.resample(wav44, 44100, SR))
    np.testing.assert_allclose(via_rate, direct, atol=1e-3, rtol=0)
    assert via_rate.shape == audio.wav2lip_mel(pcm16).shape
    mfcc44 = audio.syncnet_mfcc(torch.from_numpy(wav44), sample_rate=44100)
    assert isinstance(mfcc44, torch.Tensor) and mfcc44.shape == (13, ref_mfcc(pcm16).shape[1])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("fn", [audio.wav2lip_mel, audio.syncnet_mfcc])
def test_cuda_matches_cpu(fn: Callable[..., Any], pcm16: np.ndarray) -> None:
    batch = torch.from_numpy(np.stack([pcm16, pcm16[::-1].copy()]))
    got = fn(batch.cuda())
    assert got.device.type == "cuda"
    np.testing.assert_allclose(got.cpu().numpy(), fn(batch).numpy(), atol=TOL, rtol=0)


# ----------------------------------------------------------------------------- mel windows
@pytest.mark.parametrize("fps", [25, 29.97])
def test_mel_window_starts_follow_wav2lip(fps: float) -> None:
    n_frames = 300
    n_mel = 10_000
    starts = audio.mel_window_starts(n_frames, fps, n_mel)
    assert starts.tolist() == [int(80 * i / fps) for i in range(n_frames)]
    assert starts.tolist() == [int(i * (80.0 / fps)) for i in range(n_frames)]  # Wav2Lip inference
    assert starts.tolist() == [int(80.0 * (i / float(fps))) for i in range(n_frames)]  # Wav2Lip training
    # The three formulas agree far beyond any clip length (the claim in mel_window_starts' docstring).
    many = audio.mel_window_starts(100_000, fps, 10**7)
    assert np.array_equal(many, np.array([int(80 * i / fps) for i in range(100_000)]))


def test_mel_window_starts_clamp_at_the_end() -> None:
    n_mel = 1 + 2 * SR // 200  # 2 s of audio: 161 steps
    starts = audio.mel_window_starts(60, 25, n_mel)
    unclamped = [int(80 * i / 25) for i in range(60)]
    assert starts.max() == n_mel - 16
    assert all(s == min(u, n_mel - 16) for s, u in zip(starts, unclamped, strict=True))
    assert starts[-1] + 16 == n_mel


@pytest.mark.parametrize("as_tensor", [False, True])
def test_mel_windows_equal_slicing(pcm16: np.ndarray, as_tensor: bool) -> None:
    mel = audio.wav2lip_mel(pcm16)
    n_frames, fps = 55, 25.0  # the last frames run past the 2.0 s of audio and are clamped
    src = torch.from_numpy(mel) if as_tensor else mel
    windows = audio.mel_windows(src, n_frames, fps)
    assert isinstance(windows, torch.Tensor if as_tensor else np.ndarray)
    got = windows.numpy() if isinstance(windows, torch.Tensor) else windows
    assert got.shape == (n_frames, 80, 16)
    for i, s in enumerate(audio.mel_window_starts(n_frames, fps, mel.shape[1])):
        np.testing.assert_array_equal(got[i], mel[:, s : s + 16])
    np.testing.assert_array_equal(got[-1], mel[:, -16:])
    batched = audio.mel_windows(np.stack([mel, -mel]), n_frames, fps)
    assert batched.shape == (2, n_frames, 80, 16)
    np.testing.assert_array_equal(batched[1], -got)


def test_mel_shorter_than_a_window_is_an_error() -> None:
    with pytest.raises(TfbenchError, match="too short"):
        audio.mel_windows(np.zeros((80, 15), np.float32), 3, 25)
    with pytest.raises(TfbenchError, match="too short"):
        audio.mel_window_starts(3, 25, 15)
    assert audio.mel_windows(np.zeros((80, 16), np.float32), 3, 25).shape == (3, 80, 16)


# ----------------------------------------------------------------------------- resampling
@pytest.mark.parametrize("as_int16", [False, True])
def test_resample_keeps_tone_frequency_and_duration(as_int16: bool) -> None:
    src = 44100
    tone = 0.5 * np.sin(2 * np.pi * 440.0 * np.arange(2 * src) / src)
    wav = np.round(tone * 32768).astype(np.int16) if as_int16 else tone.astype(np.float32)
    out = audio.resample(wav, src, SR)
    assert out.dtype == np.float32 and out.shape == (2 * SR,)
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    peak_hz = np.fft.rfftfreq(len(out), 1 / SR)[np.argmax(spectrum)]
    assert abs(peak_hz - 440.0) <= 1.0
    assert abs(np.abs(out).max() - 0.5) < 0.01  # amplitude in the float convention, int16 scaled
    assert audio.resample(np.stack([wav, wav]), src, SR).shape == (2, 2 * SR)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("wav", "match"),
    [
        (np.zeros((2, 3, 400)), "1-D"),
        (np.zeros(0), "empty"),
        (np.zeros((2, 0)), "empty"),
        (np.array([0.0, np.nan, 0.0] * 200), "NaN"),
        (torch.tensor([0.0, float("inf")] * 300), "NaN"),
        (np.zeros(600, np.int32), "dtype"),
        (np.full(600, 1000.0), "peaks"),
        ([0.0] * 600, "numpy array or torch tensor"),
    ],
)
@pytest.mark.parametrize("fn", [audio.wav2lip_mel, audio.syncnet_mfcc])
def test_bad_input_raises(fn: Callable[..., Any], wav: object, match: str) -> None:
    with pytest.raises(TfbenchError, match=match):
        fn(wav)


def test_bad_rates_raise() -> None:
    with pytest.raises(TfbenchError, match="sample_rate"):
        audio.wav2lip_mel(np.zeros(1000), sample_rate=0)
    with pytest.raises(TfbenchError, match="src_rate"):
        audio.resample(np.zeros(1000), -1, SR)
    with pytest.raises(TfbenchError, match="fps"):
        audio.mel_window_starts(3, 0.0, 100)
    with pytest.raises(TfbenchError, match=r"\(80, T\)"):
        audio.mel_windows(np.zeros((13, 100)), 3, 25)
