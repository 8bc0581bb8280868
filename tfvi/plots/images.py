"""Image grids of a trained model: decoder means of prior samples, reconstructions, and
the decoded mode of each mixture component (Morningstar et al., "Automatic
Differentiation Variational Inference with Mixtures", C.3 / C.7 template figures)."""

import textwrap

import numpy as np
import tensorflow as tf

from tfvi.evaluation.modes import component_modes
from tfvi.layers.decoders import LogitNormalDecoder
from tfvi.plots.style import pyplot, save_figure, show_image, titled

__all__ = ["decoder_images", "plot_component_modes", "prior_samples", "reconstruction_grid",
           "reconstruction_grid_figure", "sample_grid", "sample_grid_figure"]


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


def plot_component_modes(model, x, image_shape, targets=None, path: str | None = None,
                         kind: str = "mode", max_rows: int = 8, title: str | None = None,
                         targets_title: str = "target"):
    """One row per example: the target image (if given, headed `targets_title`; C.7
    shows the input there), then the decoded mode (`kind="mode"`) or mean (C.7's
    "decoder means") of each component titled with its weight alpha_k (C.3/C.7),
    in `tfvi.plots`' grey convention (ink dark on light, fixed [0, 1] range).
    Returns the figure."""
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
        width = max(16, int(11 * fig.get_figwidth()))
        fig.suptitle(textwrap.fill(title, width), fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100, bbox_inches="tight")
    return fig
