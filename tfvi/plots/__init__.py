"""Every figure tfvi draws (matplotlib). The backend is chosen here, once: the
non-interactive Agg backend unless the user already chose one (imported pyplot, or set
MPLBACKEND, as a notebook does), so a notebook's inline backend is left alone.

Each plot has a `*_figure` function returning the `matplotlib.figure.Figure` (for
notebooks and tests) and, for most, a function of the same name without the suffix that
saves it to `path` and returns the path. Modules by subject:

* `style`: the conventions (titles naming the run, `IMAGE_CMAP`: ink dark on light, 0 =
  white, 1 = black, fixed [0, 1] range), `pyplot()`, `save_figure`;
* `images`: `sample_grid`, `reconstruction_grid`, `plot_component_modes` (Morningstar
  et al. C.3 / C.7 decoded component modes);
* `curves`: `training_curves` (per-epoch metrics in nats, train and validation);
* `latents`: `latent_scatter`, `posterior_density` (q(z|x) on a 2-D grid);
* `mim`: Livne et al.'s Figs. 1 and 2 for 2-D data (`figure1`, `figure2`);
* `diagnostics`: `plot_posterior_std_histogram` (Xu et al. Fig. 3);
* `calibration`: `plot_reliability_diagram` (Morningstar et al. B.1 bins).

Plots only draw: every number they show comes from `tfvi.evaluation` or the model.
"""

import os as _os
import sys as _sys

import matplotlib as _matplotlib

if "matplotlib.pyplot" not in _sys.modules and not _os.environ.get("MPLBACKEND"):
    _matplotlib.use("Agg")

from tfvi.plots import mim  # noqa: E402
from tfvi.plots.calibration import plot_reliability_diagram  # noqa: E402
from tfvi.plots.curves import NATS, training_curves, training_curves_figure  # noqa: E402
from tfvi.plots.diagnostics import plot_posterior_std_histogram  # noqa: E402
from tfvi.plots.images import (  # noqa: E402
    decoder_images,
    plot_component_modes,
    prior_samples,
    reconstruction_grid,
    reconstruction_grid_figure,
    sample_grid,
    sample_grid_figure,
)
from tfvi.plots.latents import (  # noqa: E402
    latent_scatter,
    latent_scatter_figure,
    posterior_density,
    posterior_density_figure,
)
from tfvi.plots.style import (  # noqa: E402
    IMAGE_CMAP,
    pyplot,
    run_name,
    save_figure,
    show_image,
    titled,
)

__all__ = ["IMAGE_CMAP", "NATS", "decoder_images", "latent_scatter", "latent_scatter_figure",
           "mim", "plot_component_modes", "plot_posterior_std_histogram",
           "plot_reliability_diagram", "posterior_density", "posterior_density_figure",
           "prior_samples", "pyplot", "reconstruction_grid", "reconstruction_grid_figure",
           "run_name", "sample_grid", "sample_grid_figure", "save_figure", "show_image",
           "titled", "training_curves", "training_curves_figure"]
