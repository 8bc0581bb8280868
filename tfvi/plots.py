"""Plots of a trained model (matplotlib, written as PNG files).

Each plot has a `*_figure` function returning the `matplotlib.figure.Figure` (for
notebooks and tests) and a function of the same name without the suffix that saves
it to `path` and returns the path:

* `sample_grid`: decoder means of prior samples;
* `reconstruction_grid`: targets next to the decoder mean at the posterior mean;
* `latent_scatter`: posterior means coloured by label (2-D: z itself; more: the first
  two principal components, axes PC1/PC2 with their share of the variance);
* `training_curves`: per-epoch metrics in nats (train and validation), integer epoch
  ticks, no panel that repeats another (the loss when it is minus a bound);
* `posterior_density`: q(z|x) on a grid for one x, 2-D latents only (Morningstar et
  al.'s picture of a multimodal posterior; with the true posterior when it is known).

Conventions: every figure is titled with the run (`run`, e.g. `run_name(flags)`);
images use `IMAGE_CMAP` (ink dark on light, 0 = white, 1 = black) with a fixed [0, 1]
range, as do `tfvi.evaluation.modes`' component templates. `pyplot()` is the one place
tfvi chooses a matplotlib backend.
"""

import os
import sys

import numpy as np
import tensorflow as tf

from tfvi.layers.decoders import LogitNormalDecoder

__all__ = ["IMAGE_CMAP", "pyplot", "run_name", "save_figure", "show_image", "titled", "decoder_images",
           "prior_samples", "sample_grid", "sample_grid_figure", "reconstruction_grid",
           "reconstruction_grid_figure", "latent_scatter", "latent_scatter_figure",
           "training_curves", "training_curves_figure", "posterior_density",
           "posterior_density_figure"]

# Grey map of every image tfvi draws: intensity 1 (ink) dark on a light background.
IMAGE_CMAP = "gray_r"
# Per-epoch metrics measured in nats (bounds, their terms, the MIM cross-entropies).
NATS = ("loss", "elbo", "iwae", "selbo", "siwae", "miwae", "ciwae", "piwae", "ppd",
        "reconstruction", "kl", "mim", "encoding_ce", "decoding_ce", "nll", "regularizer")


def pyplot():
    """`matplotlib.pyplot`, with the non-interactive Agg backend unless the user
    already chose a backend (imported pyplot, or set MPLBACKEND): the one place tfvi
    sets it, so a notebook's inline backend is left alone."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def run_name(flags):
    """`"<workdir name> (<model>/<objective>)"`, the run named in plot titles."""
    workdir = os.path.basename(os.path.normpath(str(flags.workdir)))
    return f"{workdir} ({flags.model}/{flags.objective})"


def titled(text, run):
    """`"<run>: <text>"` (or `text` without a run): every plot's title."""
    return f"{run}: {text}" if run else text


def show_image(ax, image, image_shape=None):
    """Draws one image (values in [0, 1]) in tfvi's grey convention."""
    image = np.asarray(image)
    if image_shape is not None:
        image = image.reshape(image_shape)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return ax.imshow(image, cmap=IMAGE_CMAP, vmin=0, vmax=1)


def prior_samples(model, n, seed=0):
    """`[n, d]` samples of the model's prior (stateless seed)."""
    return model.prior().sample(n, seed=tf.constant([seed, 1], tf.int32))


def decoder_images(model, z):
    """Mean pixel intensities `[n, D]` of p(x|z) (the sigmoid of the logit-normal's
    location, its median, where the mean has no closed form)."""
    decoder = model.decoder
    params = decoder.decoder_parameters(tf.convert_to_tensor(z))
    if isinstance(decoder, LogitNormalDecoder):
        return tf.sigmoid(params["loc"]).numpy()
    return decoder.distribution(params).mean().numpy()


def _grid(images, image_shape, columns):
    """Tiles `[n, h*w*c]` images into one canvas, separated by background (0) lines."""
    h, w, c = image_shape
    images = np.clip(np.asarray(images).reshape(-1, h, w, c), 0, 1)
    rows = int(np.ceil(len(images) / columns))
    canvas = np.zeros((rows * (h + 1), columns * (w + 1), c), np.float32)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        canvas[r * (h + 1):r * (h + 1) + h, col * (w + 1):col * (w + 1) + w] = image
    return canvas[..., 0] if c == 1 else canvas


def save_figure(fig, path):
    """Saves `fig` as `path` (creating its directory), closes it; returns `path`."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    pyplot().close(fig)
    return path


def _grid_figure(images, image_shape, columns, title):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 6 * max(1, len(images) // columns) / columns + 0.5))
    show_image(ax, _grid(images, image_shape, columns))
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return fig


def sample_grid_figure(model, image_shape, n=64, seed=0, run=None):
    images = decoder_images(model, prior_samples(model, n, seed))
    return _grid_figure(images, image_shape, 8,
                        titled(f"decoder means of {n} prior samples", run))


def sample_grid(model, image_shape, path, n=64, seed=0, run=None):
    return save_figure(sample_grid_figure(model, image_shape, n, seed, run), path)


def reconstruction_grid_figure(model, inputs, targets, image_shape, n=32, run=None):
    """Rows alternate targets and reconstructions (decoder mean at E_q[z])."""
    recon = decoder_images(model, model(inputs[:n]))
    targets = np.asarray(targets[:n])
    columns = 8
    blocks = []
    for r in range(0, len(targets), columns):
        blocks += [targets[r:r + columns], recon[r:r + columns]]
    return _grid_figure(np.concatenate(blocks), image_shape, columns,
                        titled("data (odd rows) and reconstructions (even rows)", run))


def reconstruction_grid(model, inputs, targets, image_shape, path, n=32, run=None):
    return save_figure(reconstruction_grid_figure(model, inputs, targets, image_shape, n, run),
                 path)


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
