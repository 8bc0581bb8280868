"""Decoded mode of each posterior component (Morningstar et al., C.3 / C.7 template figures).

For a mixture posterior q(z|x) = sum_k alpha_k N(mu_k, S_k), the mode of component k
is mu_k; decoding it gives p(x|mu_k), whose mode (Bernoulli: pixels with logit > 0)
or mean is the "template" image of that explanation of x
(`tfvi.plots.plot_component_modes` draws them).
"""

import keras
import numpy as np
import tensorflow as tf

from tfvi.types import ArrayLike

__all__ = ["component_modes"]


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
