"""The metric suite the runner and `tfbench score` use: the selected metrics, built once, fed clip by clip."""

from __future__ import annotations

from collections.abc import Sequence

from tfbench.errors import TfbenchError
from tfbench.metrics import adapters as _adapters  # noqa: F401  (registers the built-in metrics)
from tfbench.metrics.clip import METRICS, Clip, ClipValue, MetricSettings

__all__ = ["Clip", "MetricSettings", "MetricSuite", "refuse_full_reference"]


class MetricSuite:
    """The selected metrics of one run, built once (models loaded once) and fed clip by clip."""

    def __init__(self, names: Sequence[str], settings: MetricSettings) -> None:
        if not names:
            raise TfbenchError("no metrics selected")
        canonical = list(dict.fromkeys(METRICS.canonical(n) for n in names))
        self.metrics = {name: METRICS.get(name)(settings) for name in canonical}

    @property
    def names(self) -> list[str]:
        return list(self.metrics)

    @property
    def needs_target(self) -> bool:
        return any(m.needs_target for m in self.metrics.values())

    @property
    def needs_224(self) -> bool:
        return any(m.needs_224 for m in self.metrics.values())

    def directions(self) -> dict[str, bool]:
        """Value key -> higher is better, over all selected metrics."""
        return {k: v for m in self.metrics.values() for k, v in m.directions.items()}

    def update(self, clip: Clip) -> dict[str, ClipValue]:
        row: dict[str, ClipValue] = {}
        for metric in self.metrics.values():
            row.update(metric.update(clip))
        return row

    def compute(self) -> dict[str, ClipValue]:
        values: dict[str, ClipValue] = {}
        for metric in self.metrics.values():
            values.update(metric.compute())
        return values

    def settings_record(self) -> dict[str, str]:
        record: dict[str, str] = {}
        for metric in self.metrics.values():
            record.update(metric.settings_record())
        return record


def refuse_full_reference(names: Sequence[str], protocol: str) -> None:
    """Under the dubbing protocol there is no ground truth: full-reference metrics are an error, not a NaN."""
    if protocol != "dubbing":
        return
    bad = [n for n in names if METRICS.get(n).needs_target]
    if bad:
        raise TfbenchError(
            f"metrics {', '.join(bad)} need ground truth, which the dubbing protocol does not have; "
            "use no-reference metrics (lse, expert_sync) or the reconstruction protocol"
        )
