"""The named LSE protocols: JPEG frame path, crops per protocol, min_track skips, track combination, stamps.

Scoring uses a random `S` (the numbers do not matter here, only what is scored and how it is labelled);
faces come from the `none` detector with a fixed box, so no S3FD weights are needed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tfbench.data.faces import create, preset, process_frames
from tfbench.data.faces_crop import resize_uint8
from tfbench.data.synthetic import SynthConfig, generate_clip
from tfbench.errors import TfbenchError
from tfbench.media import write_video
from tfbench.metrics.lse import LSEResult
from tfbench.metrics.lse_protocols import (
    LSE_PROTOCOLS,
    TrackInput,
    combine_tracks,
    decode_jpeg,
    encode_jpeg,
    jpeg_round_trip,
    lse_for_frames,
    lse_for_video,
    prepare_tracks,
    quantise_int16,
)
from tfbench.models.syncnet_python import SyncNetS

BOX = (16, 8, 144, 152)  # a fixed face box in the 160x160 lrs2 frames: 128 x 144 px, above min face size 100
NONE_BOX = {"detector": "none", "box": BOX}


@pytest.fixture(scope="module")
def model() -> SyncNetS:
    torch.manual_seed(0)
    return SyncNetS().eval()


@pytest.fixture(scope="module")
def clip_56(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 56-frame synthetic lrs2 clip (fewer than 100 frames, more than 50) as an mp4, plus its arrays."""
    clip = generate_clip(SynthConfig("lrs2", 1, 1, seconds=56 / 25, seed=5, offset_fraction=0.0), 0, 0)
    path = write_video(tmp_path_factory.mktemp("lse") / "clip.mp4", clip.frames, 25, clip.audio)
    return path, clip.frames, clip.audio


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def _tracks(prepared: list[TrackInput] | str) -> list[TrackInput]:
    assert not isinstance(prepared, str), prepared
    return prepared


def _stamped(result: LSEResult, name: str) -> None:
    assert (result.protocol, result.protocol_version) == (name, LSE_PROTOCOLS.get(name).version)


def test_jpeg_round_trip_is_slightly_lossy_and_deterministic(
    clip_56: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    frames = clip_56[1]
    default = jpeg_round_trip(frames, 25.0)
    assert default.shape == frames.shape and default.dtype == np.uint8
    assert not np.array_equal(default, frames)
    assert 30.0 < _psnr(default, frames) < 45.0
    np.testing.assert_array_equal(jpeg_round_trip(frames, 25.0), default)
    fixed = jpeg_round_trip(frames, 25.0, qscale=2)  # run_pipeline's `-qscale:v 2` frame dump
    assert _psnr(default, frames) < _psnr(fixed, frames) < 45.0
    # rate control at 200 kb/s: the quantiser adapts over the clip, so the first frame (before the rate
    # controller has spent its budget) comes out closer to the source than the last
    assert _psnr(default[:1], frames[:1]) > _psnr(default[-1:], frames[-1:])


def test_jpeg_files_decode_as_cv2_reads_them(clip_56: tuple[Path, np.ndarray, np.ndarray]) -> None:
    cv2 = pytest.importorskip("cv2")  # the reference reads its frame dump with cv2.imread
    for data in encode_jpeg(clip_56[1][:4], 25.0):
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        np.testing.assert_array_equal(decode_jpeg(data), bgr[..., ::-1])


def test_int16_audio_as_ffmpeg_writes_pcm_s16le() -> None:
    wav = np.array([0.1, -1.5, 1.2, 0.5 / 32768, 1.5 / 32768, -0.99999], np.float32)
    out = quantise_int16(wav)
    np.testing.assert_array_equal(out * 32768, [3277, -32768, 32767, 0, 2, -32768])


def test_w2l_lrs_scores_the_whole_frame_after_the_jpeg_dump(
    clip_56: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    _, frames, audio = clip_56
    protocol = LSE_PROTOCOLS.get("w2l_lrs")
    (track,) = _tracks(prepare_tracks(frames[:12], audio, protocol, None))
    expected = np.stack([resize_uint8(f, 224, 224) for f in jpeg_round_trip(frames[:12], 25.0)])
    np.testing.assert_array_equal(track.crops, expected)
    assert (track.start, track.end) == (0, 12)
    np.testing.assert_array_equal(track.wav * 32768, np.rint(track.wav * 32768))  # int16 samples
    with pytest.raises(TfbenchError, match="detects no faces"):
        protocol.face_settings({"detector": "none"})


def test_tfbench_protocol_takes_the_runners_crops(clip_56: tuple[Path, np.ndarray, np.ndarray]) -> None:
    _, frames, audio = clip_56
    protocol = LSE_PROTOCOLS.get("tfbench")
    settings = protocol.face_settings(NONE_BOX)
    (track,) = _tracks(prepare_tracks(frames, audio, protocol, settings))
    runner = preset(
        "syncnet_pipeline", detector="none", box=BOX, coverage="full", min_track=0, min_face_size=0
    )
    np.testing.assert_array_equal(track.crops, process_frames(frames, runner, create(runner)).crops)
    np.testing.assert_array_equal(track.wav, audio)  # lossless: the decoded float audio as it is


def test_short_clips_are_scored_or_skipped_with_the_protocol_stamped(
    model: SyncNetS, clip_56: tuple[Path, np.ndarray, np.ndarray]
) -> None:
    _, frames, audio = clip_56
    for name in ("tfbench", "w2l_lrs"):
        overrides = NONE_BOX if name == "tfbench" else None
        video = lse_for_frames(frames[:9], audio[: 9 * 640], model, name, face_overrides=overrides)
        (row,) = video.results
        assert row.skipped is None and row.n_windows == 4 and math.isfinite(row.conf)
        _stamped(row, name)
        too_short = lse_for_frames(frames[:5], audio[: 5 * 640], model, name, face_overrides=overrides)
        assert too_short.results[0].skipped and "at least 6" in too_short.results[0].skipped
        _stamped(too_short.results[0], name)
    tiny = lse_for_frames(frames[:3], audio[: 3 * 640], model, "syncnet_pipeline", face_overrides=NONE_BOX)
    assert tiny.skipped and "min_frames" in tiny.skipped and tiny.tracks == ()


def test_syncnet_pipeline_skips_a_clip_shorter_than_min_track_with_the_reason(
    model: SyncNetS, clip_56: tuple[Path, np.ndarray, np.ndarray]
) -> None:
    path = clip_56[0]
    video = lse_for_video(path, "syncnet_pipeline", model, face_overrides=NONE_BOX)
    assert video.skipped is not None and "not more than min_track 100" in video.skipped
    assert video.tracks == () and video.n_frames == 56
    (row,) = video.results
    assert row.skipped == video.skipped and math.isnan(row.min_dist) and row.offset is None
    _stamped(row, "syncnet_pipeline")
    assert video.face_settings["min_track"] == 100 and video.face_settings["detector"] == "none"


def test_syncnet_pipeline_scores_once_min_track_is_lowered(
    model: SyncNetS, clip_56: tuple[Path, np.ndarray, np.ndarray]
) -> None:
    path = clip_56[0]
    lowered = lse_for_video(path, "syncnet_pipeline", model, face_overrides={**NONE_BOX, "min_track": 50})
    assert lowered.skipped is None and lowered.spans == ((0, 56),) and lowered.combine == "per_track"
    (row,) = lowered.results
    assert row.n_frames == 56 and row.n_windows == 51 and len(row.curve) == 31
    _stamped(row, "syncnet_pipeline")
    assert lowered.face_settings["min_track"] == 50
    latentsync = lse_for_video(path, "syncnet_pipeline_50", model, face_overrides=NONE_BOX)
    assert latentsync.combine == "mean" and latentsync.skipped is None
    (mean_row,) = latentsync.results
    _stamped(mean_row, "syncnet_pipeline_50")
    assert mean_row.min_dist == pytest.approx(row.min_dist, abs=1e-6)  # same crops and frames, one track


def _result(min_dist: float, conf: float, offset: int | None, skipped: str | None = None) -> LSEResult:
    curve = tuple(float(min_dist + abs(j - 15)) for j in range(31))
    return LSEResult(min_dist, conf, offset, curve, (conf,), 10, 20, 15, skipped, "syncnet_pipeline", "1")


def test_combine_rules_for_several_tracks() -> None:
    a, b, skipped = _result(6.0, 7.0, -3), _result(8.0, 5.0, -2), _result(math.nan, math.nan, None, "short")
    assert combine_tracks([a, b, skipped], "per_track") == [a, b, skipped]  # skips stay visible
    assert combine_tracks([a, b, skipped], "best") == [a]
    (mean,) = combine_tracks([a, b, skipped], "mean")
    assert (mean.min_dist, mean.conf, mean.offset) == (7.0, 6.0, -2)  # int(-2.5): LatentSync truncates
    assert mean.curve[0] == pytest.approx(22.0) and mean.n_windows == 20 and mean.framewise_conf == (7.0, 5.0)
    assert (mean.protocol, mean.protocol_version) == ("syncnet_pipeline", "1")
    assert combine_tracks([skipped], "mean") == [skipped]
    with pytest.raises(TfbenchError, match="combine rule"):
        combine_tracks([a], "median")  # type: ignore[arg-type]


def test_protocols_are_named_records() -> None:
    assert set(LSE_PROTOCOLS.names()) >= {"tfbench", "w2l_lrs", "syncnet_pipeline", "syncnet_pipeline_50"}
    pipeline = LSE_PROTOCOLS.get("syncnet_pipeline").face_settings()
    assert pipeline is not None and (pipeline.min_track, pipeline.crop_scale, pipeline.pad_value) == (
        100,
        0.4,
        110,
    )
    assert (pipeline.scale, pipeline.confidence, pipeline.iou_threshold, pipeline.max_gap) == (
        0.25,
        0.9,
        0.5,
        25,
    )
    assert LSE_PROTOCOLS.get("syncnet_pipeline_50").face_settings().min_track == 50  # type: ignore[union-attr]
    with pytest.raises(TfbenchError, match="did you mean 'w2l_lrs'"):
        LSE_PROTOCOLS.get("w2l_lrz")
