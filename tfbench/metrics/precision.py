"""The precision a metric's network runs in: `fp32` (default, published numbers) or `bf16` (opt-in, speed).

Only the network forward passes change: under `bf16` they run in `torch.autocast` to bfloat16 and their
outputs are cast back to float32, so everything after them (distances, medians, float64 FID statistics)
is computed as in fp32. The precision is part of what a number means, so the metrics that accept it
record it beside their values (`lse_precision`, `fid_precision` in a run's metric settings).

bfloat16 keeps 8 bits of mantissa: measured here, `S` embeddings move by about 0.6% relative and pool3
features of InceptionV3 by about 1.6% (tests/test_lse.py and tests/test_fid.py hold the tolerances). It is
fast where the hardware has bfloat16 arithmetic (recent GPUs, CPUs with AMX or AVX512-BF16); on a CPU
without it (AVX2 only) PyTorch emulates it and it is many times slower than fp32.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Literal, cast

import torch

from tfbench.errors import TfbenchError

__all__ = ["PRECISIONS", "PRECISION_DTYPES", "Precision", "check_precision", "forward_precision"]

Precision = Literal["fp32", "bf16"]
PRECISION_DTYPES: dict[Precision, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}
"""Each precision's compute dtype for the network forward passes."""
PRECISIONS: tuple[Precision, ...] = tuple(PRECISION_DTYPES)


def check_precision(precision: str, what: str) -> Precision:
    """`precision` as a `Precision`, or a TfbenchError naming `what` asked for it and the valid values."""
    if precision not in PRECISION_DTYPES:
        raise TfbenchError(f"{what}: unknown precision {precision!r}; choose {' or '.join(PRECISIONS)}")
    return cast(Precision, precision)


def forward_precision(device: torch.device, precision: Precision) -> AbstractContextManager[None]:
    """The context the network forward passes run in: autocast to bfloat16 for `bf16`; for `fp32`, autocast
    disabled (also inside a caller's autocast region, so fp32 numbers are always full float32)."""
    dtype = PRECISION_DTYPES[precision]
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
