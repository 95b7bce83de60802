"""The paper's Figure 1 for any set of experts: similarity of ground-truth pairs over window index, and its
distribution per expert.

One panel per expert with the curves of the same first `n_clips` clips (so the panels compare the experts
on identical input), then one panel with each expert's distribution of all window similarities (a violin
with its median). Drawn with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tfbench.errors import TfbenchError
from tfbench.fileio import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["stability_figure", "write_figure"]


def stability_figure(curves: Mapping[str, Mapping[str, Sequence[float]]], n_clips: int = 3) -> Figure:
    """A figure of `curves` (expert -> sample id -> window similarities); the caller saves and closes it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not curves or not all(curves.values()):
        raise TfbenchError("stability figure: no curves to plot")
    experts = list(curves)
    clips = list(curves[experts[0]])[: max(1, n_clips)]
    fig, axes = plt.subplots(
        1, len(experts) + 1, figsize=(3.6 * (len(experts) + 1), 3.0), sharey=True, squeeze=False
    )
    for ax, expert in zip(axes[0], experts, strict=False):
        for clip in clips:
            values = curves[expert][clip]
            ax.plot(range(len(values)), values, linewidth=1.2, label=clip.split("/", 1)[-1])
        ax.set_title(expert)
        ax.set_xlabel("window index")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("cosine similarity (GT audio-lip)")
    axes[0][0].legend(fontsize="xx-small", loc="best")
    dist = axes[0][-1]
    pooled = [[v for values in curves[e].values() for v in values] for e in experts]
    dist.violinplot(pooled, showmedians=True)
    dist.set_xticks(range(1, len(experts) + 1), experts)
    dist.set_title("all windows")
    dist.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def write_figure(
    curves: Mapping[str, Mapping[str, Sequence[float]]], stem: Path, n_clips: int = 3
) -> list[Path]:
    """Draw `stability_figure` once and save it as `stem`.png and `stem`.pdf, each atomically."""
    import matplotlib.pyplot as plt

    figure = stability_figure(curves, n_clips)
    paths = [stem.with_name(f"{stem.name}.{suffix}") for suffix in ("png", "pdf")]
    try:
        for path in paths:
            with atomic_path(path) as tmp:
                figure.savefig(tmp, dpi=150, bbox_inches="tight")
    finally:
        plt.close(figure)
    return paths
