"""tfvi's figure conventions: titles name the run, images are drawn ink dark on light
(`IMAGE_CMAP`, fixed [0, 1] range), figures are saved and closed in one call."""

import os

import numpy as np

__all__ = ["IMAGE_CMAP", "pyplot", "run_name", "save_figure", "show_image", "titled"]

# Grey map of every image tfvi draws: intensity 1 (ink) dark on a light background.
IMAGE_CMAP = "gray_r"


def pyplot():
    """`matplotlib.pyplot` (its backend chosen once, when `tfvi.plots` is imported)."""
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


def save_figure(fig, path):
    """Saves `fig` as `path` (creating its directory), closes it; returns `path`."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    pyplot().close(fig)
    return path
