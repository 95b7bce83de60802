"""The named, versioned LSE protocols of DESIGN.md section 4: which frames and crops `S` scores, and how.

The same "LSE-D / LSE-C" differs between papers by up to ~2 points because of the crop and the frame path,
so every number carries the name and version of the protocol it was computed under (`LSEResult.protocol`,
`protocol_version`). A protocol is a frozen `LSEProtocol` record in the `LSE_PROTOCOLS` registry:

- `tfbench` (v1): lossless in-memory decode at 25 fps; syncnet_python's 224 crop rule on the clip's own
  face track, every frame (the runner's crops: `coverage="full"`, `min_track=0`, `min_face_size=0`);
  the audio as decoded (float).
- `w2l_lrs` (v1): Wav2Lip's `calculate_scores_LRS.py` + `SyncNetInstance_calc_scores.evaluate`: frames at
  the file's own rate, dumped by `ffmpeg -i V -threads 1 -f image2 %06d.jpg` (ffmpeg's default JPEG
  settings, see `jpeg_round_trip`), read by `cv2.imread` (BGR) and the WHOLE frame resized to 224x224
  (cv2 INTER_LINEAR: `resize_uint8`), no face detection.
- `syncnet_pipeline` (v1): syncnet_python's `run_pipeline.py` then `calculate_scores_real_videos.py`:
  25 fps; frames dumped with `-qscale:v 2` for detection and cropping; S3FD (scale 0.25, conf 0.9), IoU 0.5
  linking, 25 missed frames, tracks of more than `min_track` 100 detections, mean face size > 100 px;
  crop_scale 0.4, pad 110, 224 crops of every such track, each with its own audio span; the crops are read
  back through ffmpeg's default JPEG dump as `evaluate` does. `combine` joins tracks: `per_track` (default:
  the reference script appends one "dist conf" line per track to all_scores.txt, averaged over lines),
  `mean` (per video, LatentSync's `eval_sync_conf.py`) or `best` (the track with the highest LSE-C).
- `syncnet_pipeline_50` (v1): the same with `min_track` 50 and `mean`, LatentSync's variant.

Legacy protocols quantise the audio to int16 as ffmpeg's `-acodec pcm_s16le` does (`lrintf(x * 32768)`).
Not reproduced (deviations): PySceneDetect's shot split (a clip is one shot), the MPEG-4 re-encode of
`-qscale:v 2 -r 25` (frames are retimed by timestamp instead), the XVID re-encode of the crops by
cv2.VideoWriter, and the reference's direct yuv420p -> yuvj420p conversion (tfbench converts its RGB
frames). A clip without a score (too short, no track of more than `min_track` detections, faces too
small) gives a result with NaN scores and the reason, never a silent drop.
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
import torch
from PIL import Image

from tfbench.data.faces import FaceSettings, create, crop_track, detect_frames, preset, track_faces
from tfbench.data.faces_crop import apply_plan, resize_uint8
from tfbench.errors import TfbenchError
from tfbench.metrics import lse as lse_core
from tfbench.metrics.lse import DEFAULT_BATCH_SIZE, SAMPLES_PER_FRAME, LSEResult, lse_for_clip_wav
from tfbench.metrics.precision import Precision
from tfbench.models.syncnet_python import SyncNetS
from tfbench.registry import Registry

__all__ = [
    "COMBINE_RULES",
    "FFMPEG_MJPEG_DEFAULTS",
    "LSE_PROTOCOLS",
    "LSEProtocol",
    "TrackInput",
    "VideoLSE",
    "combine_tracks",
    "decode_jpeg",
    "encode_jpeg",
    "jpeg_round_trip",
    "lse_for_frames",
    "lse_for_video",
    "prepare_tracks",
    "quantise_int16",
]

Combine = Literal["per_track", "mean", "best"]
COMBINE_RULES: tuple[Combine, ...] = ("per_track", "mean", "best")
CropMode = Literal["track_224", "whole_frame"]

FFMPEG_MJPEG_DEFAULTS: dict[str, Any] = {"bit_rate": 200_000, "qmin": 2, "qmax": 31, "pix_fmt": "yuvj420p"}
"""What `ffmpeg -i V -f image2 %06d.jpg` encodes with when given no quality option. There is no default
qscale: the mjpeg encoder keeps libavcodec's context defaults (bit_rate 200 kb/s, qmin 2, qmax 31, no
QSCALE flag; ffmpeg logs "mjpeg, yuvj420p(pc), q=2-31, 200 kb/s"), so libavcodec's rate control picks each
frame's quantiser for about bit_rate / fps bits per frame, depending on the frames before it. Checked
against Debian's ffmpeg 5.1 CLI on a synthetic clip: file sizes within 2% frame by frame, decoded pixels
at PSNR ~40 dB of its files (not bit-exact: other libavcodec version, RGB instead of yuv420p input)."""
FF_QP2LAMBDA = 118  # libavutil: -qscale:v q sets global_quality = q * FF_QP2LAMBDA


@dataclass(frozen=True)
class LSEProtocol:
    """One named way of turning a video into LSE numbers (see the module docstring).

    `fps`: decode rate (None: the file's own frames). `crop`: 'track_224' (syncnet_python's crop rule on
    face tracks) or 'whole_frame' (resized to 224). `face_preset` + `face_overrides`: the face settings of
    'track_224'. `all_tracks`: score every track that passes the filters (else the chosen one).
    `detect_jpeg_qscale`: the frames detection and cropping read went through a JPEG dump at this fixed
    qscale (None: no dump). `score_jpeg`: the frames `S` scores went through ffmpeg's default JPEG dump.
    `int16_audio`: the audio was written as 16-bit PCM. `combine`: the default rule for several tracks.
    Bump `version` whenever a change could move a number computed under the protocol.
    """

    name: str
    version: str
    description: str
    reference: str
    fps: float | None = 25.0
    crop: CropMode = "track_224"
    face_preset: str | None = "syncnet_pipeline"
    face_overrides: tuple[tuple[str, Any], ...] = ()
    all_tracks: bool = False
    detect_jpeg_qscale: int | None = None
    score_jpeg: bool = False
    int16_audio: bool = False
    combine: Combine = "per_track"

    def face_settings(self, overrides: Mapping[str, Any] | None = None) -> FaceSettings | None:
        """The face settings of this protocol with `overrides` applied (None for whole-frame protocols)."""
        if self.face_preset is None and overrides:
            raise TfbenchError(f"LSE protocol {self.name!r} detects no faces; face overrides do not apply")
        if self.face_preset is None:
            return None
        return preset(self.face_preset, **{**dict(self.face_overrides), **dict(overrides or {})})


LSE_PROTOCOLS: Registry[LSEProtocol] = Registry("LSE protocol")
LSE_PROTOCOLS.add(
    lse_core.LSE_PROTOCOL,  # "tfbench": lse.py's name and version, stamped on every LSEResult by default
    LSEProtocol(
        lse_core.LSE_PROTOCOL, lse_core.LSE_PROTOCOL_VERSION, "lossless decode, 224 crops of the track",
        "tfbench runner (benchmark/runner.py face_settings)",
        face_overrides=(("coverage", "full"), ("min_track", 0), ("min_face_size", 0.0)),
    ),
)  # fmt: skip
LSE_PROTOCOLS.add(
    "w2l_lrs",
    LSEProtocol(
        "w2l_lrs", "1", "whole frame resized to 224 after ffmpeg's default JPEG dump, no detection",
        "Wav2Lip evaluation/scores_LSE/calculate_scores_LRS.py", fps=None, crop="whole_frame",
        face_preset=None, score_jpeg=True, int16_audio=True,
    ),
)  # fmt: skip
LSE_PROTOCOLS.add(
    "syncnet_pipeline",
    LSEProtocol(
        "syncnet_pipeline", "1", "syncnet_python run_pipeline: S3FD tracks of > 100 frames, 224 crops",
        "syncnet_python run_pipeline.py + Wav2Lip calculate_scores_real_videos.sh", all_tracks=True,
        detect_jpeg_qscale=2, score_jpeg=True, int16_audio=True,
    ),
)  # fmt: skip
LSE_PROTOCOLS.add(
    "syncnet_pipeline_50",
    LSEProtocol(
        "syncnet_pipeline_50", "1", "syncnet_pipeline with tracks of > 50 frames, tracks averaged per video",
        "LatentSync eval/eval_sync_conf.py (min_track 50, fmean over tracks)",
        face_preset="syncnet_pipeline_50", all_tracks=True, detect_jpeg_qscale=2, score_jpeg=True,
        int16_audio=True, combine="mean",
    ),
)  # fmt: skip


def encode_jpeg(frames: np.ndarray, fps: float = 25.0, qscale: int | None = None) -> list[bytes]:
    """(T, H, W, 3) uint8 RGB frames as the JPEG files `ffmpeg -i V [-qscale:v q] -f image2 %06d.jpg` writes.

    One mjpeg encoder of PyAV's libavcodec runs over the clip in order: time base 1/fps, one thread (the
    reference's `-threads 1`), yuvj420p, and ffmpeg's defaults (`FFMPEG_MJPEG_DEFAULTS`) or a fixed
    `qscale` (`-qscale:v q`: global_quality q * FF_QP2LAMBDA). Deterministic for a given libavcodec.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise TfbenchError(
            f"JPEG encoding needs (T, H, W, 3) uint8 RGB frames, got {frames.dtype} {frames.shape}"
        )
    if len(frames) == 0:
        return []
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = int(frames.shape[2]), int(frames.shape[1])
    codec.pix_fmt = FFMPEG_MJPEG_DEFAULTS["pix_fmt"]
    codec.bit_rate = FFMPEG_MJPEG_DEFAULTS["bit_rate"]
    codec.qmin, codec.qmax = FFMPEG_MJPEG_DEFAULTS["qmin"], FFMPEG_MJPEG_DEFAULTS["qmax"]
    rate = Fraction(fps).limit_denominator(1001)
    codec.time_base, codec.framerate = 1 / rate, rate
    codec.thread_count = 1
    if qscale is not None:
        codec.qscale = True
        codec.global_quality = qscale * FF_QP2LAMBDA
    packets: list[bytes] = []
    for index, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame = frame.reformat(format=FFMPEG_MJPEG_DEFAULTS["pix_fmt"])
        frame.pts = index
        packets.extend(bytes(packet) for packet in codec.encode(frame))
    packets.extend(bytes(packet) for packet in codec.encode(None))
    return packets


def decode_jpeg(data: bytes) -> np.ndarray:
    """One JPEG file as (H, W, 3) uint8 RGB, decoded by libjpeg-turbo through PIL: the pixels of
    cv2.imread in RGB order (measured bit-exact against opencv-python-headless 5.0 on these files)."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def jpeg_round_trip(frames: np.ndarray, fps: float = 25.0, qscale: int | None = None) -> np.ndarray:
    """Frames written as JPEG files the way ffmpeg's image2 muxer writes them (`encode_jpeg`) and read
    back (`decode_jpeg`): (T, H, W, 3) uint8 RGB in, the same shape out."""
    packets = encode_jpeg(frames, fps, qscale)
    return np.stack([decode_jpeg(p) for p in packets]) if packets else np.asarray(frames).copy()


def quantise_int16(wav: np.ndarray) -> np.ndarray:
    """Float audio as ffmpeg writes it to pcm_s16le (`lrintf(x * 32768)`, clipped), back in [-1, 1)."""
    values = np.clip(np.rint(np.asarray(wav, np.float64) * 32768.0), -32768, 32767)
    return (values / 32768.0).astype(np.float32)


@dataclass(frozen=True)
class TrackInput:
    """What `S` scores for one track: (T, 224, 224, 3) uint8 RGB crops, audio of frames [start, end)."""

    crops: np.ndarray
    wav: np.ndarray
    start: int
    end: int


def prepare_tracks(
    frames: np.ndarray,
    wav: np.ndarray,
    protocol: LSEProtocol,
    settings: FaceSettings | None,
    detector_weights: Mapping[str, Path] | None = None,
    device: str = "cpu",
    fps: float = 25.0,
) -> list[TrackInput] | str:
    """The crops and audio spans the protocol scores (or the reason there are none), in track order."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise TfbenchError(
            f"LSE protocols need (T, H, W, 3) uint8 RGB frames, got {frames.dtype} {frames.shape}"
        )
    wav = quantise_int16(wav) if protocol.int16_audio else np.asarray(wav, np.float32)
    if protocol.crop == "whole_frame":
        seen = jpeg_round_trip(frames, fps) if protocol.score_jpeg else frames
        crops = np.stack([resize_uint8(image, 224, 224) for image in seen]) if len(seen) else seen
        return [TrackInput(crops, wav, 0, len(frames))]
    if settings is None:
        raise TfbenchError(f"LSE protocol {protocol.name!r} needs face settings")
    qscale = protocol.detect_jpeg_qscale
    source = frames if qscale is None else jpeg_round_trip(frames, fps, qscale)
    if len(source) < settings.min_frames:
        return f"clip has {len(source)} frame(s), fewer than min_frames {settings.min_frames}"
    detector = create(settings, dict(detector_weights or {}), device)
    detections = detect_frames([source], detector, settings.batch_size)
    result = track_faces(
        detections, iou_threshold=settings.iou_threshold, max_gap=settings.max_gap,
        min_track=settings.min_track, min_face_size=settings.min_face_size, rule=settings.track_rule,
        coverage=settings.coverage, min_frames=settings.min_frames,
    )  # fmt: skip
    if result.track is None:
        return result.skip_reason or "no face track"
    tracks = sorted(result.tracks, key=lambda t: t.start) if protocol.all_tracks else [result.track]
    inputs = []
    for track in tracks:
        plan = crop_track(track, source.shape[1:3], settings)
        if isinstance(plan, str):
            return plan
        crops = apply_plan(source[track.start : track.end], plan)
        if protocol.score_jpeg:
            crops = jpeg_round_trip(crops, fps)
        span = wav[track.start * SAMPLES_PER_FRAME : track.end * SAMPLES_PER_FRAME]
        inputs.append(TrackInput(crops, span, track.start, track.end))
    return inputs


def combine_tracks(tracks: Sequence[LSEResult], rule: Combine) -> list[LSEResult]:
    """The rows a video contributes under `rule`: every track (skipped ones too, with their reasons), the
    mean over the scored tracks, or the best scored track (highest LSE-C).

    `mean` averages LSE-D, LSE-C and the 31-value curve, truncates the mean offset to an int (LatentSync's
    `int(fmean(...))`), concatenates the framewise confidences and sums the windows and frames used. With
    no scored track, `mean` and `best` return the first skip.
    """
    if rule not in COMBINE_RULES:
        raise TfbenchError(f"combine rule must be one of {', '.join(COMBINE_RULES)}, got {rule!r}")
    scored = [t for t in tracks if t.skipped is None]
    if rule == "per_track" or not scored:
        return list(tracks) if rule == "per_track" else list(tracks[:1])
    if len(scored) == 1 or rule == "best":
        return [max(scored, key=lambda t: t.conf)]
    offsets = [t.offset for t in scored if t.offset is not None]
    return [
        dataclasses.replace(
            scored[0],
            min_dist=float(np.mean([t.min_dist for t in scored])),
            conf=float(np.mean([t.conf for t in scored])),
            offset=int(np.mean(offsets)) if offsets else None,
            curve=tuple(float(v) for v in np.mean([t.curve for t in scored], axis=0)),
            framewise_conf=tuple(v for t in scored for v in t.framewise_conf),
            n_windows=sum(t.n_windows for t in scored),
            n_frames_used=sum(t.n_frames_used for t in scored),
        )
    ]


@dataclass(frozen=True)
class VideoLSE:
    """LSE of one video under a protocol: every scored track, and the rows the combine rule gives.

    `tracks[i]` covers video frames `spans[i]`; `results` are the rows to report (each stamped with the
    protocol); `skipped` says why the video has no score; `face_settings` the face parameters used.
    """

    protocol: str
    protocol_version: str
    combine: Combine
    n_frames: int
    tracks: tuple[LSEResult, ...]
    spans: tuple[tuple[int, int], ...]
    results: tuple[LSEResult, ...]
    skipped: str | None = None
    face_settings: dict[str, Any] = field(default_factory=dict)


def lse_for_frames(
    frames: np.ndarray,
    wav: np.ndarray,
    model: SyncNetS,
    protocol: str | LSEProtocol = "tfbench",
    *,
    face_overrides: Mapping[str, Any] | None = None,
    detector_weights: Mapping[str, Path] | None = None,
    combine: Combine | None = None,
    fps: float = 25.0,
    device: str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    precision: Precision = "fp32",
) -> VideoLSE:
    """LSE of decoded frames ((T, H, W, 3) uint8 RGB at the protocol's rate) and 16 kHz mono float audio.

    `face_overrides` change the protocol's face settings (e.g. `detector="none", box=(...)`, or a lower
    `min_track`; the settings used are recorded); `detector_weights` maps weights entries to files.
    """
    spec = protocol if isinstance(protocol, LSEProtocol) else LSE_PROTOCOLS.get(protocol)
    rule = combine or spec.combine
    if rule not in COMBINE_RULES:
        raise TfbenchError(f"combine rule must be one of {', '.join(COMBINE_RULES)}, got {rule!r}")
    settings = spec.face_settings(face_overrides)
    record = settings.key_fields() if settings is not None else {}
    n = len(frames)
    prepared = prepare_tracks(frames, wav, spec, settings, detector_weights, device, fps)
    if isinstance(prepared, str):
        nan = math.nan
        skip = LSEResult(nan, nan, None, (), (), 0, n, 0, prepared, spec.name, spec.version, precision)
        return VideoLSE(spec.name, spec.version, rule, n, (), (), (skip,), prepared, record)
    results = []
    for item in prepared:
        crops = torch.from_numpy(item.crops)
        result = lse_for_clip_wav(
            model, crops, item.wav, batch_size=batch_size, channel_order="rgb", precision=precision
        )
        results.append(dataclasses.replace(result, protocol=spec.name, protocol_version=spec.version))
    rows = tuple(combine_tracks(results, rule))
    skipped = None if any(r.skipped is None for r in rows) else rows[0].skipped
    spans = tuple((item.start, item.end) for item in prepared)
    return VideoLSE(spec.name, spec.version, rule, n, tuple(results), spans, rows, skipped, record)


def lse_for_video(
    path: str | Path,
    protocol: str | LSEProtocol = "tfbench",
    model: SyncNetS | None = None,
    *,
    syncnet_weights: str | Path | None = None,
    face_overrides: Mapping[str, Any] | None = None,
    detector_weights: Mapping[str, Path] | None = None,
    combine: Combine | None = None,
    device: str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    precision: Precision = "fp32",
) -> VideoLSE:
    """LSE of a video file under a named protocol: decoded at the protocol's rate (25 fps, or the file's
    own frames for `w2l_lrs`), audio at 16 kHz mono, then `lse_for_frames`.

    `model` defaults to `syncnet_v2` loaded from `syncnet_weights` or the weights cache, on `device`.
    Raises `MediaError` for an unreadable file or one without audio.
    """
    from tfbench import weights
    from tfbench.media import read_video
    from tfbench.models.syncnet_python import load_syncnet_v2

    spec = protocol if isinstance(protocol, LSEProtocol) else LSE_PROTOCOLS.get(protocol)
    if model is None:
        source = Path(syncnet_weights) if syncnet_weights is not None else weights.resolve("syncnet_v2")
        model = lse_core.prepare_syncnet(load_syncnet_v2(source, device))
    video = read_video(path, fps=spec.fps)
    if video.audio is None:  # read_video raises first; kept for the type checker
        raise TfbenchError(f"{path}: has no audio stream")
    fps = video.fps if math.isfinite(video.fps) and video.fps > 0 else 25.0
    return lse_for_frames(
        video.frames, video.audio, model, spec, face_overrides=face_overrides,
        detector_weights=detector_weights, combine=combine, fps=fps, device=device, batch_size=batch_size,
        precision=precision,
    )  # fmt: skip
