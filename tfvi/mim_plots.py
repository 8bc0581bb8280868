"""MIM/VAE pictures for 2-D data and 2-D latents, like seed 003 Fig. 1 and Fig. 2.

* `data_panel`: level sets of the data density P(x) with reconstructed test points
  (x -> z ~ q(z|x) -> mean of p(x|z));
* `latent_panel`: one-standard-deviation ellipses of q(z|x) for test points, with the
  one-standard-deviation circle of the anchor P(z) = N(0, I) dashed;
* `figure1`: both rows for several models side by side (e.g. VAE and MIM at 5, 20,
  500 hidden units);
* `figure2`: metrics versus hidden units, mean +/- std over seeds, one line per model.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from matplotlib.patches import Circle, Ellipse  # noqa: E402

from tfvi.data.synthetic import GMM2D_CENTERS, GMM2D_STD  # noqa: E402

__all__ = ["gmm2d_log_density", "reconstruct", "posterior_moments", "data_panel",
           "latent_panel", "figure1", "figure2"]


def gmm2d_log_density(x, centers=GMM2D_CENTERS, std=GMM2D_STD):
    """log P(x) `[...]` of an equally weighted mixture of isotropic 2-D Gaussians
    (`centers` `[C, 2]`, standard deviation `std`; default: `tfvi.data.gmm2d`'s)."""
    x = np.asarray(x, np.float64)
    centers = np.asarray(centers, np.float64)
    sq = np.sum((x[..., None, :] - centers) ** 2, axis=-1)
    log_comp = -0.5 * sq / std**2 - np.log(2 * np.pi * std**2)
    return np.logaddexp.reduce(log_comp, axis=-1) - np.log(len(centers))


def reconstruct(model, x, seed=0):
    """Mean of p(x|z) at one sample z ~ q(z|x), `[n, D]` (what Fig. 1 shows)."""
    q = model.encoder(tf.convert_to_tensor(x, tf.float32))
    z = q.sample(seed=tf.constant([seed, 3], tf.int32))
    return np.asarray(model.decoder(z).mean())


def posterior_moments(model, x):
    """Means `[n, d]` and covariances `[n, d, d]` of q(z|x)."""
    q = model.encoder(tf.convert_to_tensor(x, tf.float32))
    return np.asarray(q.mean()), np.asarray(q.covariance())


def data_panel(ax, model, x_test, extent=3.2, title=None, seed=0, centers=GMM2D_CENTERS,
               std=GMM2D_STD):
    grid = np.linspace(-extent, extent, 200)
    gx, gy = np.meshgrid(grid, grid)
    density = np.exp(gmm2d_log_density(np.stack([gx, gy], -1), centers, std))
    ax.contour(gx, gy, density, levels=6, colors="k", linewidths=0.6)
    rec = reconstruct(model, x_test, seed)
    ax.scatter(rec[:, 0], rec[:, 1], s=3, c="tab:red", alpha=0.6)
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title, fontsize=9)


def latent_panel(ax, model, x_test, extent=3.2, max_ellipses=300):
    means, covs = posterior_moments(model, x_test[:max_ellipses])
    if means.shape[-1] != 2:
        raise ValueError(f"latent_panel draws 2-D latents; got latent_dim {means.shape[-1]}.")
    for mean, cov in zip(means, covs):
        values, vectors = np.linalg.eigh(cov)
        angle = np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1]))
        ax.add_patch(Ellipse(mean, 2 * np.sqrt(values[-1]), 2 * np.sqrt(values[0]),
                             angle=angle, fill=False, color="tab:green", lw=0.5, alpha=0.6))
    ax.add_patch(Circle((0, 0), 1.0, fill=False, ls="--", color="k", lw=1.0))
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")


def figure1(models, x_test, path, seed=0, centers=GMM2D_CENTERS, std=GMM2D_STD,
            extent=3.2):
    """`models`: an ordered dict title -> trained model (2-D data, 2-D latents).
    Top row: P(x) contours (the mixture `centers`, `std`) and reconstructions in
    [-extent, extent]^2; bottom row: q(z|x) ellipses."""
    n = len(models)
    fig, axes = plt.subplots(2, n, figsize=(2.4 * n, 5), squeeze=False)
    for j, (title, model) in enumerate(models.items()):
        data_panel(axes[0, j], model, x_test, extent=extent, title=title, seed=seed,
                   centers=centers, std=std)
        latent_panel(axes[1, j], model, x_test)
    axes[0, 0].set_ylabel("x: P(x), reconstructions")
    axes[1, 0].set_ylabel("z: q(z|x) 1-sd, P(z) dashed")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def figure2(rows, path, metrics=("mi", "nll", "rmse", "knn5")):
    """`rows`: dicts with `model`, `hidden`, `seed` and the metric keys.
    One panel per metric: mean +/- std over seeds versus hidden units."""
    labels = {"mi": "MI (KSG, nats)", "nll": "NLL (nats)", "rmse": "reconstruction RMSE",
              "knn5": "5-NN accuracy (z ~ q(z|x))", "knn5_mean": "5-NN accuracy (E[z|x])"}
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 2.8))
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        for name, color in (("mim", "tab:blue"), ("amim", "tab:green"), ("vae", "tab:red")):
            sel = [r for r in rows if r["model"] == name]
            if not sel:
                continue
            hidden = sorted({r["hidden"] for r in sel})
            vals = [[r[metric] for r in sel if r["hidden"] == h] for h in hidden]
            ax.errorbar(hidden, [np.mean(v) for v in vals], [np.std(v) for v in vals],
                        label=name.upper(), color=color, marker="o", capsize=3)
        ax.set_xscale("log")
        ax.set_xlabel("hidden units")
        ax.set_title(labels.get(metric, metric), fontsize=9)
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
