"""Latent-space pictures: posterior means in 2-D (or their first two principal
components) and the density of q(z|x) on a grid (Morningstar et al.'s picture of a
multimodal posterior, with the true posterior when it is known)."""

import numpy as np
import tensorflow as tf

from tfvi.plots.style import pyplot, save_figure, titled

__all__ = ["latent_scatter", "latent_scatter_figure", "posterior_density",
           "posterior_density_figure"]


def latent_scatter_figure(model, inputs, labels, max_points=2000, run=None):
    """Posterior means E_q[z|x] `[n, d]`: z itself for d <= 2, else the first two
    principal components (axes `PC1 (p% of variance)`, `PC2 (q% ...)`)."""
    plt = pyplot()
    z = np.asarray(model(inputs[:max_points]))
    label = None if labels is None else np.asarray(labels[:max_points])
    what = "posterior means E_q[z|x]"
    if z.shape[1] > 2:
        centred = z - z.mean(0)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        z = centred @ vt[:2].T
        share = 100 * s[:2] ** 2 / max((s ** 2).sum(), 1e-12)
        xlabel, ylabel = (f"PC{i + 1} ({share[i]:.0f}% of variance)" for i in range(2))
        what += f", first 2 of {vt.shape[0]} principal components"
    elif z.shape[1] == 2:
        xlabel, ylabel = "z1", "z2"
    else:
        z = np.concatenate([z, np.zeros_like(z)], 1)
        xlabel, ylabel = "z1", "(1-D latent)"
    fig, ax = plt.subplots(figsize=(6, 5))
    sc = ax.scatter(z[:, 0], z[:, 1], c=label, s=6, cmap="tab10" if label is not None else None)
    if label is not None:
        fig.colorbar(sc, ax=ax, label="class label")
    ax.set_title(titled(what, run), fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return fig


def latent_scatter(model, inputs, labels, path, max_points=2000, run=None):
    return save_figure(latent_scatter_figure(model, inputs, labels, max_points, run), path)


def posterior_density_figure(model, x, true_log_posterior=None, extent=3.0, grid=150,
                             x_name="x", run=None):
    """Density of q(z|x) for one `x` `[D]` over a 2-D latent grid, normalised to
    its maximum (and of the true posterior `true_log_posterior(z [N, 2]) -> [N]`
    when given), with a colorbar. `x_name` names x in the title (e.g. "test
    example 0, label 3")."""
    if model.latent_dim != 2:
        raise ValueError(f"posterior_density needs a 2-D latent; got {model.latent_dim}.")
    plt = pyplot()
    axis = np.linspace(-extent, extent, grid, dtype=np.float32)
    zz = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    q = model.encoder(tf.convert_to_tensor(np.asarray(x, np.float32)[None]))
    log_q = q.log_prob(zz[:, None, :]).numpy().reshape(grid, grid)
    panels = [("q(z|x)", log_q)]
    if true_log_posterior is not None:
        log_p = np.asarray(true_log_posterior(zz)).reshape(grid, grid)
        panels.append(("model p(z|x) ~ p(x|z) r(z)", log_p))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.4), squeeze=False)
    for ax, (title, log_d) in zip(axes.flat, panels):
        cs = ax.contourf(axis, axis, np.exp(log_d - log_d.max()), levels=20,
                         cmap="viridis", vmin=0, vmax=1)
        fig.colorbar(cs, ax=ax, label="density / its maximum")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("z1")
        ax.set_ylabel("z2")
        ax.set_aspect("equal")
    fig.suptitle(titled(f"posterior of {x_name}", run), fontsize=10)
    fig.tight_layout()
    return fig


def posterior_density(model, x, path, true_log_posterior=None, extent=3.0, grid=150,
                      x_name="x", run=None):
    return save_figure(posterior_density_figure(model, x, true_log_posterior, extent, grid,
                                          x_name, run), path)
