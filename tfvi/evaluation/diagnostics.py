"""Xu et al.'s prior diagnostics (Table 7, Table 8, Fig. 3) for any tfvi VAE.

For a test set {x}, with L samples z ~ q(z|x) per example:

    elbo      = E_x E_q [log p(x|z) + log p(z) - log q(z|x)]
    recons    = E_x E_q [log p(x|z)]                     (reported as a log-likelihood)
    kl        = E_x KL(q(z|x) || p(z))  = E_x E_q [log q(z|x) - log p(z)]
    kl_z|x    = E_x KL(q(z|x) || p(z|x)) = E_x [log p(x) - elbo(x)]

with log p(x) the IWAE-S estimate (`iwae_log_likelihood`, S = 1000 as in Xu et al.
B.3), so elbo = recons - kl and kl_z|x >= 0 up to estimator noise. Every density is the
model's own: the learned prior the model actually has scores both the ELBO and the
NLL. Active units: Var_x E_q[z_u] > 0.01 (`tfvi.evaluation.active_units`).
`tfvi.plots.plot_posterior_std_histogram` draws Fig. 3 (left): per-dimension posterior standard
deviations over the data, one histogram per model.
"""

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfvi.evaluation.active_units import active_units
from tfvi.evaluation.likelihood import iwae_log_likelihood
from tfvi.types import ArrayLike

__all__ = [
    "elbo_terms",
    "format_diagnostics_table",
    "posterior_stds",
    "prior_diagnostics",
]


def _batches(x, batch_size):
    for b, start in enumerate(range(0, len(x), batch_size)):
        yield b, x[start:start + batch_size]


def elbo_terms(model: keras.Model, x: ArrayLike, num_samples: int = 100,
               batch_size: int = 100, y: ArrayLike | None = None,
               seed: int = 0) -> dict[str, np.ndarray]:
    """Per-example Monte Carlo ELBO, reconstruction and KL(q(z|x)||p(z)), float64 `[N]` each.

    Uses `num_samples` samples per mixture component, stratified (SELBO weights) for
    mixture posteriors; beta is 1 whatever the model's current warm-up value.
    """
    x = np.asarray(x, np.float32)
    y = x if y is None else np.asarray(y)

    @tf.function
    def terms_fn(xb, yb, seed_b):
        t = model.log_weight_terms(xb, yb, samples=num_samples, seed=seed_b)
        v = model.bound_values(t, objective="elbo", beta=tf.constant(1.0))
        return v["elbo"], v["reconstruction"], v["kl"]

    out = {"elbo": [], "reconstruction": [], "kl": []}
    for b, xb in _batches(x, batch_size):
        yb = y[b * batch_size:b * batch_size + len(xb)]
        seed_b = tf.constant([seed, b], tf.int32)
        values = terms_fn(tf.constant(xb), tf.constant(yb, dtype=tf.float32), seed_b)
        for key, value in zip(out, values):
            out[key].append(value.numpy().astype(np.float64))
    return {k: np.concatenate(v) for k, v in out.items()}


def prior_diagnostics(model: keras.Model, x: ArrayLike, num_samples: int = 1000,
                      elbo_samples: int = 100, batch_size: int = 100,
                      y: ArrayLike | None = None, seed: int = 0,
                      active_threshold: float = 1e-2) -> dict[str, Any]:
    """Xu et al. Table 7/8 row for `model` on `x`: a dict of floats.

    Keys: `nll` (-log p(x), IWAE-`num_samples`), `elbo`, `reconstruction`, `kl`
    (E KL(q(z|x)||p(z))), `kl_z_given_x` (log p(x) - ELBO), `active_units`, and
    `protocol` (the sample counts used).
    """
    terms = elbo_terms(model, x, elbo_samples, batch_size, y, seed)
    log_px = iwae_log_likelihood(model, x, num_samples=num_samples, batch_size=batch_size,
                                 y=y, seed=seed)
    return {
        "nll": float(-log_px.mean()),
        "elbo": float(terms["elbo"].mean()),
        "reconstruction": float(terms["reconstruction"].mean()),
        "kl": float(terms["kl"].mean()),
        "kl_z_given_x": float((log_px - terms["elbo"]).mean()),
        "active_units": active_units(model, x, threshold=active_threshold),
        "protocol": {"nll_samples": num_samples, "elbo_samples": elbo_samples,
                     "active_threshold": active_threshold, "seed": seed,
                     "examples": int(len(x))},
    }


def posterior_stds(model: keras.Model, x: ArrayLike, batch_size: int = 500,
                   num_samples: int = 1000, seed: int = 0) -> np.ndarray:
    """Per-dimension standard deviations of q(z|x), `[N, latent_dim]` (Xu et al. Fig. 3).

    Analytic where the posterior has one (Gaussians, mixtures), else Monte Carlo with
    `num_samples` samples (flow posteriors).
    """
    x = np.asarray(x, np.float32)
    out = []
    for b, xb in _batches(x, batch_size):
        q = model.encoder(tf.constant(xb))
        try:
            std = q.stddev()
        except NotImplementedError:
            z = q.sample(num_samples, seed=tf.constant([seed, b], tf.int32))
            std = tf.math.reduce_std(z, axis=0)
        out.append(std.numpy())
    return np.concatenate(out)


def format_diagnostics_table(rows: dict[str, dict[str, Any]]) -> str:
    """Plain-text table of `prior_diagnostics` results: rows is name -> dict."""
    cols = ("nll", "elbo", "reconstruction", "kl", "kl_z_given_x", "active_units")
    header = f"{'model':<22}" + "".join(f"{c:>15}" for c in cols)
    lines = [header, "-" * len(header)]
    for name, r in rows.items():
        cells = "".join(f"{r[c]:>15d}" if isinstance(r[c], int) else f"{r[c]:>15.3f}"
                        for c in cols)
        lines.append(f"{name:<22}" + cells)
    return "\n".join(lines)
