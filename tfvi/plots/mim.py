"""MIM/VAE pictures for 2-D data and 2-D latents, like Fig. 1 and Fig. 2 of Livne,
Swersky & Fleet, "MIM: Mutual Information Machine". `figure1`/`figure2` save a PNG;
`figure1_figure`/`figure2_figure` return the Figure.

* `data_panel`: level sets of the data density P(x) with reconstructed test points
  (x -> z ~ q(z|x) -> mean of p(x|z));
* `latent_panel`: one-standard-deviation ellipses of q(z|x) for test points, with the
  one-standard-deviation circle of the anchor P(z) = N(0, I) dashed;
* `figure1`: both rows for several models side by side (e.g. VAE and MIM at 5, 20,
  500 hidden units);
* `figure2`: metrics versus hidden units, mean +/- std over seeds, one line per model.

Every number drawn comes from elsewhere: P(x) from `tfvi.data.gmm2d_log_density`, the
reconstructions from `tfvi.evaluation.reconstructions`.
"""

import numpy as np
import tensorflow as tf
from matplotlib.patches import Circle, Ellipse

from tfvi.data.synthetic import GMM2D_CENTERS, GMM2D_STD, gmm2d_log_density
from tfvi.evaluation.over_seeds import mean_and_sd
from tfvi.evaluation.representation import reconstructions
from tfvi.plots.style import pyplot, save_figure, titled

__all__ = ["posterior_moments", "data_panel", "latent_panel", "figure1", "figure1_figure",
           "figure2", "figure2_figure"]


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
    rec = reconstructions(model, x_test, seed)
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


def figure1_figure(models, x_test, seed=0, centers=GMM2D_CENTERS, std=GMM2D_STD,
                   extent=3.2, run=None):
    """`models`: an ordered dict title -> trained model (2-D data, 2-D latents).
    Top row: P(x) contours (the mixture `centers`, `std`) and reconstructions in
    [-extent, extent]^2; bottom row: q(z|x) ellipses. Returns the Figure."""
    n = len(models)
    plt = pyplot()
    fig, axes = plt.subplots(2, n, figsize=(2.4 * n, 5.4), squeeze=False)
    for j, (title, model) in enumerate(models.items()):
        data_panel(axes[0, j], model, x_test, extent=extent, title=title, seed=seed,
                   centers=centers, std=std)
        latent_panel(axes[1, j], model, x_test)
        axes[0, j].set_xlabel("x1")
        axes[1, j].set_xlabel("z1")
    axes[0, 0].set_ylabel("x2 (P(x) contours, reconstructions)")
    axes[1, 0].set_ylabel("z2 (q(z|x) 1-sd; P(z) dashed)")
    fig.suptitle(titled("data and latent space, as in Livne et al., MIM, Fig. 1", run),
                 fontsize=10)
    fig.tight_layout()
    return fig


def figure1(models, x_test, path, seed=0, centers=GMM2D_CENTERS, std=GMM2D_STD,
            extent=3.2, run=None):
    """`figure1_figure` saved to `path`; returns `path`."""
    return save_figure(figure1_figure(models, x_test, seed, centers, std, extent, run), path)


# figure2's metrics: (panel title, y label with units).
FIGURE2_LABELS = {"mi": ("mutual information I(x; z), KSG", "nats"),
                  "nll": ("NLL, IWAE", "nats"),
                  "rmse": ("reconstruction RMSE", "data units"),
                  "knn5": ("5-NN accuracy, z ~ q(z|x)", "fraction correct"),
                  "knn5_mean": ("5-NN accuracy, E[z|x]", "fraction correct")}


def figure2_figure(rows, metrics=("mi", "nll", "rmse", "knn5"), run=None):
    """`rows`: dicts with `model`, `hidden`, `seed` and the metric keys.
    One panel per metric: mean +/- std over seeds versus hidden units (Livne et al.,
    MIM, Fig. 2). Returns the Figure."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2))
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        for name, color in (("mim", "tab:blue"), ("amim", "tab:green"), ("vae", "tab:red")):
            sel = [r for r in rows if r["model"] == name]
            if not sel:
                continue
            hidden = sorted({r["hidden"] for r in sel})
            vals = [[r[metric] for r in sel if r["hidden"] == h] for h in hidden]
            stats = [mean_and_sd(v) for v in vals]
            ax.errorbar(hidden, [m for m, _ in stats], [sd for _, sd in stats],
                        label=name.upper(), color=color, marker="o", capsize=3)
        ax.set_xscale("log")
        ax.set_xlabel("hidden units")
        title, unit = FIGURE2_LABELS.get(metric, (metric, ""))
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(f"{metric} ({unit})" if unit else metric)
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.suptitle(titled("representation vs. width, as in Livne et al., MIM, Fig. 2", run),
                 fontsize=10)
    fig.tight_layout()
    return fig


def figure2(rows, path, metrics=("mi", "nll", "rmse", "knn5"), run=None):
    """`figure2_figure` saved to `path`; returns `path`."""
    return save_figure(figure2_figure(rows, metrics, run), path)
