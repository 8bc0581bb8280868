"""Decoded mode of each posterior component (Morningstar et al., C.3 / C.7 template figures).

For a mixture posterior q(z|x) = sum_k alpha_k N(mu_k, S_k), the mode of component k
is mu_k; decoding it gives p(x|mu_k), whose mode (Bernoulli: pixels with logit > 0)
or mean is the "template" image of that explanation of x.
"""

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfvi.types import ArrayLike

__all__ = ["component_modes", "plot_component_modes"]


def component_modes(model: keras.Model, x: ArrayLike, kind: str = "mode") -> np.ndarray:
    """Decoded component modes.

    Args:
      model: a tfvi model with `encoder` and `decoder`.
      x: `[N, input_dim]` encoder inputs.
      kind: "mode" (the decoded distribution's mode) or "mean".

    Returns:
      dict with `alpha` `[N, K]` mixture weights, `loc` `[N, K, d]` component modes in
      latent space and `decoded` `[N, K, D]`.
    """
    if kind not in ("mode", "mean"):
        raise ValueError(f"`kind` must be 'mode' or 'mean'; got {kind!r}.")
    params = model.encoder.posterior_parameters(tf.convert_to_tensor(x, tf.float32))
    loc = params["loc"]
    if loc.shape.rank == 2:  # K = 1
        loc = loc[:, tf.newaxis]
        alpha = tf.ones(tf.shape(loc)[:2])
    else:
        alpha = tf.nn.softmax(params["logits"], axis=-1)
    dist = model.decoder(loc)
    decoded = dist.mode() if kind == "mode" else dist.mean()
    return {"alpha": alpha.numpy(), "loc": loc.numpy(), "decoded": np.asarray(decoded)}


def plot_component_modes(model: keras.Model, x: ArrayLike, image_shape: tuple[int, ...],
                         targets: ArrayLike | None = None, path: str | None = None,
                         kind: str = "mode", max_rows: int = 8, title: str | None = None,
                         targets_title: str = "target") -> Any:
    """One row per example: the target image (if given, headed `targets_title`; C.7
    shows the input there), then the decoded mode (`kind="mode"`) or mean (C.7's
    "decoder means") of each component titled with its weight alpha_k (C.3/C.7),
    in `tfvi.plots`' grey convention (ink dark on light, fixed [0, 1] range).
    Returns the figure."""
    from tfvi.plots import pyplot, show_image

    plt = pyplot()

    x = np.asarray(x)[:max_rows]
    out = component_modes(model, x, kind)
    n, k = out["alpha"].shape
    extra = 1 if targets is not None else 0
    fig, axes = plt.subplots(n, k + extra, figsize=(1.2 * (k + extra), 1.3 * n),
                             squeeze=False)
    for i in range(n):
        if targets is not None:
            show_image(axes[i, 0], np.asarray(targets)[i], image_shape)
            axes[i, 0].set_title(targets_title if i == 0 else "", fontsize=7)
        for j in range(k):
            ax = axes[i, j + extra]
            show_image(ax, out["decoded"][i, j], image_shape)
            ax.set_title(f"a={out['alpha'][i, j]:.2f}", fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    if title:  # wrapped to the figure's width (a few components make it narrow)
        import textwrap

        width = max(16, int(11 * fig.get_figwidth()))
        fig.suptitle(textwrap.fill(title, width), fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100, bbox_inches="tight")
    return fig
