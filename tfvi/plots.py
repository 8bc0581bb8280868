"""Plots of a trained model (matplotlib, written as PNG files).

* `sample_grid`: decoder means of prior samples;
* `reconstruction_grid`: targets next to the decoder mean at the posterior mean;
* `latent_scatter`: posterior means coloured by label (2-D directly, else the first
  two principal components);
* `training_curves`: per-epoch metrics (train and validation);
* `posterior_density`: q(z|x) on a grid for one x, 2-D latents only (seed 000's
  picture of a multimodal posterior; with the true posterior when it is known).
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfvi.layers.decoders import LogitNormalDecoder  # noqa: E402

__all__ = ["decoder_images", "prior_samples", "sample_grid", "reconstruction_grid",
           "latent_scatter", "training_curves", "posterior_density"]


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
    h, w, c = image_shape
    images = np.clip(np.asarray(images).reshape(-1, h, w, c), 0, 1)
    rows = int(np.ceil(len(images) / columns))
    canvas = np.ones((rows * (h + 1), columns * (w + 1), c), np.float32)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        canvas[r * (h + 1):r * (h + 1) + h, col * (w + 1):col * (w + 1) + w] = image
    return canvas[..., 0] if c == 1 else canvas


def _save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _show_grid(images, image_shape, columns, title, path):
    fig, ax = plt.subplots(figsize=(6, 6 * max(1, len(images) // columns) / columns + 0.5))
    ax.imshow(_grid(images, image_shape, columns), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.axis("off")
    return _save(fig, path)


def sample_grid(model, image_shape, path, n=64, seed=0):
    images = decoder_images(model, prior_samples(model, n, seed))
    return _show_grid(images, image_shape, 8, f"decoder means of {n} prior samples", path)


def reconstruction_grid(model, inputs, targets, image_shape, path, n=32):
    """Rows alternate targets and reconstructions (decoder mean at E_q[z])."""
    recon = decoder_images(model, model(inputs[:n]))
    targets = np.asarray(targets[:n])
    columns = 8
    blocks = []
    for r in range(0, len(targets), columns):
        blocks += [targets[r:r + columns], recon[r:r + columns]]
    pairs = np.concatenate(blocks)
    return _show_grid(pairs, image_shape, columns,
                      "data (odd rows) and reconstructions (even rows)", path)


def latent_scatter(model, inputs, labels, path, max_points=2000):
    z = np.asarray(model(inputs[:max_points]))
    label = None if labels is None else np.asarray(labels[:max_points])
    title = "posterior means E_q[z|x]"
    if z.shape[1] > 2:
        centred = z - z.mean(0)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        z = centred @ vt[:2].T
        explained = (s[:2] ** 2).sum() / max((s ** 2).sum(), 1e-12)
        title += f" (first 2 principal components, {100 * explained:.0f}% of variance)"
    elif z.shape[1] == 1:
        z = np.concatenate([z, np.zeros_like(z)], 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    sc = ax.scatter(z[:, 0], z[:, 1], c=label, s=6, cmap="tab10" if label is not None else None)
    if label is not None:
        fig.colorbar(sc, ax=ax, label="label")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    return _save(fig, path)


def training_curves(history, path):
    """One panel per metric (`loss`, `elbo`, ...), train and `val_` curves together."""
    names = sorted(k for k in history if not k.startswith("val_"))
    if not names:
        return None
    cols = min(3, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        values = history[name]
        ax.plot(np.arange(1, len(values) + 1), values, label="train")
        if f"val_{name}" in history:
            val = history[f"val_{name}"]
            ax.plot(np.arange(1, len(val) + 1), val, label="validation")
            ax.legend(fontsize=7)
        ax.set_title(name)
        ax.set_xlabel("epoch")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def posterior_density(model, x, path, true_log_posterior=None, extent=3.0, grid=150):
    """Contours of q(z|x) for one `x` `[D]` over a 2-D latent grid (and of the true
    posterior `true_log_posterior(z [N, 2]) -> [N]` when given)."""
    if model.latent_dim != 2:
        raise ValueError(f"posterior_density needs a 2-D latent; got {model.latent_dim}.")
    axis = np.linspace(-extent, extent, grid, dtype=np.float32)
    zz = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    q = model.encoder(tf.convert_to_tensor(np.asarray(x, np.float32)[None]))
    log_q = q.log_prob(zz[:, None, :]).numpy().reshape(grid, grid)
    panels = [("q(z|x)", log_q)]
    if true_log_posterior is not None:
        log_p = np.asarray(true_log_posterior(zz)).reshape(grid, grid)
        panels.append(("model p(z|x) ~ p(x|z) r(z)", log_p))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
    for ax, (title, log_d) in zip(axes.flat, panels):
        ax.contourf(axis, axis, np.exp(log_d - log_d.max()), levels=20, cmap="viridis")
        ax.set_title(f"{title}, x = {np.round(np.asarray(x)[:4], 2).tolist()}", fontsize=8)
        ax.set_xlabel("z1")
        ax.set_ylabel("z2")
        ax.set_aspect("equal")
    fig.tight_layout()
    return _save(fig, path)
