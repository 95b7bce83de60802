"""Metrics: a functional core per metric plus a thin torchmetrics `Metric` that declares its direction.

Sync: `lse_for_clip` / `LSE` (LSE-D lower-better, LSE-C higher-better; syncnet_python's algorithm, see
`tfbench.metrics.lse`). The torchmetrics classes are imported on first use, so the functional core stays
cheap to import.
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
    from tfbench.metrics.lse_metric import LSE

_LAZY = {"LSE": "tfbench.metrics.lse_metric"}

__all__ = [
    "LSE",
    "LSE_PROTOCOL",
    "LSE_PROTOCOL_VERSION",
    "LSEResult",
    "lse_for_clip",
    "lse_for_clip_wav",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfbench.metrics' has no attribute {name!r}")
