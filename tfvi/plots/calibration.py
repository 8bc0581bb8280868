"""Reliability diagram of a classifier's posterior predictive, with the equal-count bins
of Morningstar et al., "Automatic Differentiation Variational Inference with Mixtures",
B.1 (`tfvi.evaluation.calibration_bins`)."""

from typing import Any

import numpy as np

from tfvi.evaluation.calibration import calibration_bins
from tfvi.plots.style import pyplot
from tfvi.types import ArrayLike

__all__ = ["plot_reliability_diagram"]


def plot_reliability_diagram(probs: ArrayLike, labels: ArrayLike, bins: int = 10,
                             rank_by: str = "true_class", path: str | None = None,
                             title: str | None = None, ax: Any = None) -> Any:
    """Reliability diagram: per-bin accuracy against confidence, with the diagonal.

    Returns the matplotlib figure (saved to `path` if given).
    """
    plt = pyplot()
    conf, acc, _ = calibration_bins(probs, labels, bins, rank_by)
    ece = float(np.mean(np.abs(conf - acc)))
    if ax is None:
        fig, ax = plt.subplots(figsize=(4, 4))
    else:
        fig = ax.figure
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
    ax.plot(conf, acc, "o-", label=f"model (ECE {ece:.3f})")
    ax.bar(conf, acc - conf, bottom=conf, width=0.02, color="tab:red", alpha=0.4,
           label="gap")
    xlabel = "mean p(true class)" if rank_by == "true_class" else "mean max p(class)"
    ax.set(xlabel=f"confidence: {xlabel}", ylabel="fraction correct", xlim=(0, 1),
           ylim=(0, 1), title=title or f"Reliability ({bins} equal-count bins)")
    ax.legend(loc="upper left", fontsize=8)
    if path is not None:
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    return fig
