"""Statistics over per-video values: mean, std, bootstrap confidence intervals and paired comparisons.

Confidence intervals resample videos (the unit a benchmark generalises over) with a fixed seed, so the same
results give the same interval on every machine. NaN (a clip a metric could not score) is excluded and the
denominator `n` says how many values were used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as scipy_stats

BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    """Mean, standard deviation, 95% bootstrap interval of the mean, and how many finite values were used."""

    mean: float
    std: float
    ci_low: float
    ci_high: float
    n: int
    n_missing: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class PairedComparison:
    """B minus A over the samples both runs scored: mean difference, its bootstrap CI and a Wilcoxon test."""

    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int


def _present(values: np.ndarray) -> np.ndarray:
    """The values that exist: NaN marks a video a metric could not score; an infinite value (the PSNR of
    identical frames) is a real result and is kept, so it shows in the mean instead of vanishing."""
    values = np.asarray(values, dtype=np.float64)
    return values[~np.isnan(values)]


def bootstrap_ci(
    values: np.ndarray, n_boot: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (NaN left out); NaN when fewer than 2."""
    data = _present(values)
    if data.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(n_boot, data.size))].mean(axis=1)
    alpha = (1.0 - CONFIDENCE) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def summarize(values: np.ndarray) -> Summary:
    """Summary of one metric's per-video values."""
    raw = np.asarray(values, dtype=np.float64)
    data = _present(raw)
    with np.errstate(invalid="ignore"):  # an infinite PSNR makes std and the CI NaN, which is the answer
        return _summary(raw, data)


def _summary(raw: np.ndarray, data: np.ndarray) -> Summary:
    low, high = bootstrap_ci(data)
    return Summary(
        mean=float(data.mean()) if data.size else float("nan"),
        std=float(data.std(ddof=1)) if data.size > 1 else float("nan"),
        ci_low=low,
        ci_high=high,
        n=int(data.size),
        n_missing=int(raw.size - data.size),
    )


def paired_comparison(a: np.ndarray, b: np.ndarray) -> PairedComparison:
    """Compare two runs on the same samples (aligned arrays). A pair with the same value on both sides is a
    tie with difference 0, even when that value is infinite (PSNR of frames identical to the reference);
    other pairs with a NaN or infinite side are dropped (such a difference has no finite mean)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values must align, got {a.shape} and {b.shape}")
    keep = (np.isfinite(a) & np.isfinite(b)) | (a == b)
    a, b = a[keep], b[keep]
    diff = np.zeros_like(a)
    differ = a != b  # b - a of two equal infinities would be NaN
    diff[differ] = b[differ] - a[differ]
    low, high = bootstrap_ci(diff)
    if diff.size >= 2 and np.any(diff != 0):
        p_value = float(scipy_stats.wilcoxon(diff).pvalue)
    else:  # identical runs (or too few pairs): no evidence of a difference
        p_value = 1.0 if diff.size >= 1 else float("nan")
    nan = float("nan")
    return PairedComparison(
        mean_a=float(a.mean()) if a.size else nan,
        mean_b=float(b.mean()) if b.size else nan,
        diff=float(diff.mean()) if diff.size else nan,
        ci_low=low,
        ci_high=high,
        p_value=p_value,
        n=int(diff.size),
    )
