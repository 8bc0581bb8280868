"""Xu et al., "On the Necessity and Effectiveness of Learning the Prior of Variational
Auto-Encoder", Fig. 3 (left): histograms of per-dimension posterior standard deviations
(`tfvi.evaluation.posterior_stds`), one per model."""

import numpy as np

from tfvi.plots.style import pyplot, save_figure

__all__ = ["plot_posterior_std_histogram"]


def plot_posterior_std_histogram(stds: dict, path: str, bins: int = 50,
                                 title: str | None = None) -> str:
    """Histograms of posterior standard deviations, one per model (Xu et al. Fig. 3 left).

    Args:
      stds: dict name -> array of standard deviations (any shape; flattened).
      path: output image path (`.png`).
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    values = {k: np.log10(np.clip(np.ravel(v), 1e-8, None)) for k, v in stds.items()}
    lo = min(v.min() for v in values.values())
    hi = max(v.max() for v in values.values())
    edges = np.linspace(lo, hi + 1e-6, bins + 1)
    for name, v in values.items():
        ax.hist(v, bins=edges, alpha=0.5, label=name, density=True)
    ax.set_xlabel("log10 std of q(z|x), per dimension")
    ax.set_ylabel("density")
    ax.set_title(title or "posterior standard deviations")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)
