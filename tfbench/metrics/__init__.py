"""Metrics: a functional core per metric plus a thin torchmetrics `Metric` that declares its direction.

Sync: `lse_for_clip` / `LSE` (LSE-D lower-better, LSE-C higher-better; syncnet_python's algorithm, see
`tfbench.metrics.lse`), `ExpertSync` (Wav2Lip's expert), `AVSync` (the paper's AVSyncNet). Visual: `FID`,
`SSIM`, `PSNR`, `LPIPS`; `LMD`; `IdentitySimilarity`. `METRICS` / `MetricSuite`: every metric behind the
per-clip interface runs use.
The torchmetrics classes are imported on first use, so the functional core stays cheap to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tfbench.metrics.lse import (
    LSE_PROTOCOL,
    LSE_PROTOCOL_VERSION,
    LSEResult,
    lse_for_clip,
    lse_for_clip_wav,
)

if TYPE_CHECKING:
    from tfbench.metrics.avsync_metric import AVSync
    from tfbench.metrics.expert_sync import ExpertSync
    from tfbench.metrics.fid import FID
    from tfbench.metrics.identity import IdentitySimilarity
    from tfbench.metrics.landmark_distance import LMD
    from tfbench.metrics.lse_metric import LSE
    from tfbench.metrics.perceptual import LPIPS
    from tfbench.metrics.suite import METRICS, MetricSuite
    from tfbench.metrics.visual import PSNR, SSIM

_LAZY = {
    "LSE": "tfbench.metrics.lse_metric",
    "PSNR": "tfbench.metrics.visual",
    "SSIM": "tfbench.metrics.visual",
    "LPIPS": "tfbench.metrics.perceptual",
    "FID": "tfbench.metrics.fid",
    "LMD": "tfbench.metrics.landmark_distance",
    "IdentitySimilarity": "tfbench.metrics.identity",
    "ExpertSync": "tfbench.metrics.expert_sync",
    "AVSync": "tfbench.metrics.avsync_metric",
    "METRICS": "tfbench.metrics.suite",
    "MetricSuite": "tfbench.metrics.suite",
}

__all__ = [
    "FID",
    "LMD",
    "LPIPS",
    "LSE",
    "LSE_PROTOCOL",
    "LSE_PROTOCOL_VERSION",
    "METRICS",
    "PSNR",
    "SSIM",
    "AVSync",
    "ExpertSync",
    "IdentitySimilarity",
    "LSEResult",
    "MetricSuite",
    "lse_for_clip",
    "lse_for_clip_wav",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfbench.metrics' has no attribute {name!r}")
