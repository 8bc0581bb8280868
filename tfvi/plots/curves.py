"""Training curves: per-epoch metrics in nats (train and validation), integer epoch
ticks, no panel that repeats another (the loss when it is minus a bound)."""

import numpy as np

from tfvi.plots.style import pyplot, save_figure, titled

__all__ = ["NATS", "training_curves", "training_curves_figure"]

# Per-epoch metrics measured in nats (bounds, their terms, the MIM cross-entropies).
NATS = ("loss", "elbo", "iwae", "selbo", "siwae", "miwae", "ciwae", "piwae", "ppd",
        "reconstruction", "kl", "mim", "encoding_ce", "decoding_ce", "nll", "regularizer")


def _redundant(history, names):
    """Names whose curve repeats another's: `loss` when it equals minus a bound."""
    if "loss" not in history:
        return set()
    loss = np.asarray(history["loss"], np.float64)
    for name in names:
        other = np.asarray(history[name], np.float64)
        if name != "loss" and other.shape == loss.shape and np.allclose(loss, -other,
                                                                         rtol=1e-5,
                                                                         atol=1e-5):
            return {"loss"}
    return set()


def training_curves_figure(history, run=None):
    """One panel per metric (`elbo`, `kl`, ...; `loss` only when it is not minus a
    bound), train and validation (`val_*`) curves together; y in nats where the
    metric is one; integer epoch ticks. None when `history` is empty."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    names = sorted(k for k in history if not k.startswith("val_") and len(history[k]))
    names = [n for n in names if n not in _redundant(history, names)]
    if not names:
        return None
    cols = min(3, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows + 0.4),
                             squeeze=False)
    for ax, name in zip(axes.flat, names):
        values = history[name]
        ax.plot(np.arange(1, len(values) + 1), values, marker=".", label="train")
        if history.get(f"val_{name}"):
            val = history[f"val_{name}"]
            ax.plot(np.arange(1, len(val) + 1), val, marker=".", label="validation")
        ax.legend(fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{name} (nats)" if name in NATS else name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle(titled("training curves (per-epoch means)", run), fontsize=10)
    fig.tight_layout()
    return fig


def training_curves(history, path, run=None):
    fig = training_curves_figure(history, run)
    return None if fig is None else save_figure(fig, path)
