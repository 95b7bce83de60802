"""The built-in metrics behind the per-clip interface: each adapter calls its metric's functional core.

Values per clip go into the results row; only FID keeps dataset state (sums of Inception features of the
ground-truth and generated crops), so it reports at the end. Models are loaded once, in `__init__`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

import numpy as np
import torch

from tfbench import weights
from tfbench.errors import TfbenchError
from tfbench.metrics import avsync as _avsync  # noqa: F401  (registers `avsync`, which lives in its module)
from tfbench.metrics.clip import METRICS, Clip, ClipMetric, ClipValue, MetricSettings, target_of
from tfbench.metrics.precision import PRECISIONS, check_precision

if TYPE_CHECKING:
    from tfbench.metrics.visual import SSIMVariant


def _tensor(frames: object, device: str) -> torch.Tensor:
    return torch.as_tensor(frames).to(device)


@METRICS.register("lse")
class LSEClipMetric(ClipMetric):
    """LSE-D / LSE-C / AV offset with syncnet_python's `S` under a named protocol (DESIGN.md section 4).

    `tfbench` (default) scores the in-memory 224 crops of the generated frames; the legacy protocols
    (`w2l_lrs`, `syncnet_pipeline`, ...) re-read the written video through their own frame path and face
    pipeline (`tfbench.metrics.lse_protocols`). Where a protocol scores several face tracks of one video, the
    row holds their mean and `lse_tracks` says how many. `S` runs in the settings' precision.
    """

    directions: ClassVar[dict[str, bool]] = {"lse_d": False, "lse_c": True}
    needs_224: ClassVar[bool] = True
    weights: ClassVar[tuple[str, ...]] = ("syncnet_v2",)
    precisions: ClassVar[tuple[str, ...]] = PRECISIONS

    def __init__(self, settings: MetricSettings) -> None:
        from tfbench.metrics.lse import prepare_syncnet
        from tfbench.metrics.lse_protocols import LSE_PROTOCOLS
        from tfbench.models.syncnet_python import load_syncnet_v2

        self.protocol = LSE_PROTOCOLS.get(settings.lse_protocol)
        self.settings = settings
        self.precision = check_precision(settings.precision, "lse")
        path = weights.resolve("syncnet_v2", settings.overrides)
        self.model = prepare_syncnet(load_syncnet_v2(path, settings.device))

    def update(self, clip: Clip) -> dict[str, ClipValue]:
        from tfbench.metrics.lse import LSE_PROTOCOL, lse_for_clip_wav
        from tfbench.metrics.lse_protocols import lse_for_video

        if self.protocol.name != LSE_PROTOCOL:
            if clip.video_path is None:
                raise TfbenchError(
                    f"{clip.sample_id}: LSE protocol {self.protocol.name} needs the video file"
                )
            video = lse_for_video(
                clip.video_path,
                self.protocol,
                self.model,
                detector_weights=self.settings.overrides,
                device=self.settings.device,
                batch_size=self.settings.batch_size,
                precision=self.precision,
            )
            results = [r for r in video.results if r.skipped is None]
            if not results:
                return {"lse_d": float("nan"), "lse_c": float("nan"), "lse_skip": video.skipped or "no track"}
            return {
                "lse_d": float(np.mean([r.min_dist for r in results])),
                "lse_c": float(np.mean([r.conf for r in results])),
                "av_offset": int(np.median([r.offset for r in results if r.offset is not None])),
                "lse_tracks": len(results),
                "lse_skip": None,
            }
        if clip.generated_224 is None:
            raise TfbenchError(f"{clip.sample_id}: lse needs the 224 px crops of the generated video")
        frames = torch.from_numpy(clip.generated_224).to(self.settings.device)
        result = lse_for_clip_wav(
            self.model,
            frames,
            clip.audio,
            clip.sample_rate,
            self.settings.batch_size,
            channel_order="rgb",
            precision=self.precision,
        )
        return {
            "lse_d": result.min_dist,
            "lse_c": result.conf,
            "av_offset": result.offset,
            "lse_curve": [float(v) for v in result.curve],
            "lse_windows": result.n_windows,
            "lse_skip": result.skipped,
        }

    def settings_record(self) -> dict[str, str]:
        return {
            "lse_protocol": self.protocol.name,
            "lse_protocol_version": self.protocol.version,
            "lse_precision": self.precision,
        }


@METRICS.register("psnr")
class PSNRClipMetric(ClipMetric):
    """PSNR in dB per frame (float64, data_range 255), averaged per video (see `tfbench.metrics.visual`)."""

    directions: ClassVar[dict[str, bool]] = {"psnr": True}
    needs_target: ClassVar[bool] = True
    precisions: ClassVar[tuple[str, ...]] = PRECISIONS  # no network: the same numbers in any precision

    def __init__(self, settings: MetricSettings) -> None:
        self.device = settings.device

    def update(self, clip: Clip) -> dict[str, ClipValue]:
        from tfbench.metrics.visual import psnr_per_frame

        target = target_of(clip, "psnr")
        values = psnr_per_frame(_tensor(clip.generated, self.device), _tensor(target, self.device))
        return {"psnr": float(values.mean())}


@METRICS.register("ssim")
class SSIMClipMetric(ClipMetric):
    """SSIM per frame under the run's named variant, averaged per video."""

    directions: ClassVar[dict[str, bool]] = {"ssim": True}
    needs_target: ClassVar[bool] = True
    precisions: ClassVar[tuple[str, ...]] = PRECISIONS  # no network: the same numbers in any precision

    def __init__(self, settings: MetricSettings) -> None:
        from tfbench.metrics.visual import SSIM_VARIANTS

        if settings.ssim_variant not in SSIM_VARIANTS:
            raise TfbenchError(
                f"unknown SSIM variant {settings.ssim_variant!r} (known: {', '.join(SSIM_VARIANTS)})"
            )
        self.device = settings.device
        self.variant = cast("SSIMVariant", settings.ssim_variant)

    def update(self, clip: Clip) -> dict[str, ClipValue]:
        from tfbench.metrics.visual import ssim_per_frame

        target = target_of(clip, "ssim")
        values = ssim_per_frame(
            _tensor(clip.generated, self.device), _tensor(target, self.device), self.variant
        )
        return {"ssim": float(values.mean())}

    def settings_record(self) -> dict[str, str]:
        return {"ssim_variant": self.variant}


@METRICS.register("lpips")
class LPIPSClipMetric(ClipMetric):
    """LPIPS (AlexNet, v0.1) per frame, averaged per video."""

    directions: ClassVar[dict[str, bool]] = {"lpips": False}
    needs_target: ClassVar[bool] = True
    weights: ClassVar[tuple[str, ...]] = ("lpips_alex",)

    def __init__(self, settings: MetricSettings) -> None:
        from tfbench.metrics.perceptual import load_lpips

        self.model = load_lpips(settings.overrides, settings.device).eval()
        self.batch_size = settings.batch_size

    def update(self, clip: Clip) -> dict[str, ClipValue]:
        from tfbench.metrics.perceptual import lpips_per_frame

        target = target_of(clip, "lpips")
        values = lpips_per_frame(
            self.model, torch.as_tensor(clip.generated), torch.as_tensor(target), self.batch_size
        )
        return {"lpips": float(values.mean())}


@METRICS.register("fid")
class FIDClipMetric(ClipMetric):
    """FID between the ground-truth and generated crops of the whole set (a dataset-level value only)."""

    directions: ClassVar[dict[str, bool]] = {"fid": False}
    needs_target: ClassVar[bool] = True
    weights: ClassVar[tuple[str, ...]] = ("fid_inception",)
    precisions: ClassVar[tuple[str, ...]] = PRECISIONS

    def __init__(self, settings: MetricSettings) -> None:
        from tfbench.metrics.fid import FID, FidResize

        resize = cast(FidResize, settings.fid_resize)  # FID checks the value and names the valid ones
        precision = check_precision(settings.precision, "fid")
        self.metric = FID(resize=resize, weights_overrides=settings.overrides, precision=precision)
        self.metric.to(settings.device)

    def update(self, clip: Clip) -> dict[str, ClipValue]:
        self.metric.update(torch.as_tensor(clip.generated), real=False)
        self.metric.update(torch.as_tensor(target_of(clip, "fid")), real=True)
        return {}

    def compute(self) -> dict[str, ClipValue]:
        values = self.metric.compute()
        return {"fid": float(values["fid"]), "fid_frames": int(values["n_fake"])}

    def settings_record(self) -> dict[str, str]:
        return {"fid_resize": self.metric.resize, "fid_precision": self.metric.precision}


@METRICS.register("lmd")
class LMDClipMetric(ClipMetric):
    """Mouth landmark distance (points 48-67, pixels of the crop); frames without a face are counted."""

    directions: ClassVar[dict[str, bool]] = {"lmd": False}
    needs_target: ClassVar[bool] = True

    def __init__(self, settings: MetricSettings) -> None:
        from tfbench.data.landmarks import Landmarker

        self.landmarker = Landmarker()

    def update(self, clip: Clip) -> dict[str, ClipValue]:
        from tfbench.metrics.landmark_distance import lmd_for_clip

        result = lmd_for_clip(clip.generated, target_of(clip, "lmd"), landmarker=self.landmarker)
        return {"lmd": result.lmd, "lmd_frames_excluded": result.n_excluded, "lmd_skip": result.skipped}


@METRICS.register("idsim")
class IdentityClipMetric(ClipMetric):
    """Identity similarity (cosine of dlib 128-d embeddings) to the ground truth, and IFC = 1 - it."""

    directions: ClassVar[dict[str, bool]] = {"idsim": True, "ifc": False}
    needs_target: ClassVar[bool] = True

    def __init__(self, settings: MetricSettings) -> None:
        from tfbench.metrics.identity import FaceEmbedder

        self.embedder = FaceEmbedder()

    def update(self, clip: Clip) -> dict[str, ClipValue]:
        from tfbench.metrics.identity import identity_for_clip

        result = identity_for_clip(clip.generated, target_of(clip, "idsim"), embedder=self.embedder)
        return {"idsim": result.idsim, "ifc": result.ifc}


@METRICS.register("expert_sync", aliases=("sync_w2l",))
class ExpertSyncClipMetric(ClipMetric):
    """Wav2Lip expert SyncNet: mean cosine of generated 5-frame windows with their mel windows."""

    directions: ClassVar[dict[str, bool]] = {"sync_w2l": True}
    weights: ClassVar[tuple[str, ...]] = ("wav2lip_syncnet",)

    def __init__(self, settings: MetricSettings) -> None:
        from tfbench.models.wav2lip_syncnet import load_wav2lip_syncnet

        path = weights.resolve("wav2lip_syncnet", settings.overrides)
        self.model = load_wav2lip_syncnet(path, settings.device)
        self.device = settings.device

    def update(self, clip: Clip) -> dict[str, ClipValue]:
        from tfbench.metrics.expert_sync import expert_sync_for_clip_wav

        if clip.generated.shape[1:3] != (96, 96):
            raise TfbenchError(
                f"{clip.sample_id}: expert_sync needs 96x96 crops, got {clip.generated.shape[1:3]}"
            )
        result = expert_sync_for_clip_wav(self.model, _tensor(clip.generated, self.device), clip.audio)
        return {"sync_w2l": result.score, "sync_w2l_offset": result.offset, "sync_w2l_skip": result.skipped}
