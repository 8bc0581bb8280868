"""tfvi.plots (and tfvi.plots.mim): the Figure objects (titles naming the run, labelled
axes with units, PCA axes, integer epoch ticks, colorbars, one grey convention), the
single place the matplotlib backend is set, and no metric computed in a plot module."""

import pathlib
import re

import numpy as np
import pytest

from tfvi import layers, models, plots
from tfvi.evaluation import reconstruction_rmse, reconstructions, representation_metrics

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUN = "w7 (vae/siwae)"


def _vae(latent_dim, components=1, input_dim=16):
    encoder = layers.MixtureEncoder(latent_dim, components=components, hidden=(8,))
    decoder = layers.BernoulliDecoder(input_dim, hidden=(8,))
    return models.VAE(encoder, decoder, objective="siwae", input_dim=input_dim, seed=0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return (rng.random((60, 16)) < 0.4).astype(np.float32), rng.integers(0, 3, 60)


def test_latent_axes_are_principal_components_with_their_variance_share(data):
    x, labels = data
    model = _vae(latent_dim=4)
    fig = plots.latent_scatter_figure(model, x, labels, run=RUN)
    ax = fig.axes[0]
    # Independent PCA of the posterior means: shares of the variance of PC1, PC2.
    z = np.asarray(model(x))
    eig = np.sort(np.linalg.eigvalsh(np.cov(z.T)))[::-1]
    share = 100 * eig / eig.sum()
    assert ax.get_xlabel() == f"PC1 ({share[0]:.0f}% of variance)"
    assert ax.get_ylabel() == f"PC2 ({share[1]:.0f}% of variance)"
    assert ax.get_title().startswith(RUN)
    plots.pyplot().close(fig)


def test_two_dimensional_latent_is_plotted_raw(data):
    x, labels = data
    model = _vae(latent_dim=2)
    fig = plots.latent_scatter_figure(model, x, labels)
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("z1", "z2")
    np.testing.assert_allclose(ax.collections[0].get_offsets(), np.asarray(model(x)),
                               rtol=1e-6)
    plots.pyplot().close(fig)


def test_training_curves_units_integer_epochs_validation_and_no_redundant_panel():
    rng = np.random.default_rng(1)
    siwae = list(-100 + np.cumsum(rng.random(7)))
    history = {"loss": [-v for v in siwae], "siwae": siwae, "kl": list(rng.random(7)),
               "val_loss": [-v - 1 for v in siwae], "val_siwae": [v - 1 for v in siwae],
               "decoder_weight": list(np.linspace(0, 0.5, 7))}
    fig = plots.training_curves_figure(history, run=RUN)
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    titles = [ax.get_title() for ax in axes]
    assert sorted(titles) == ["decoder_weight", "kl", "siwae"]  # loss = -siwae dropped
    by_title = {ax.get_title(): ax for ax in axes}
    assert by_title["siwae"].get_ylabel() == "siwae (nats)"
    assert by_title["kl"].get_ylabel() == "kl (nats)"
    assert "nats" not in by_title["decoder_weight"].get_ylabel()
    for ax in axes:
        assert ax.get_xlabel() == "epoch"
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    labels = [line.get_label() for line in by_title["siwae"].get_lines()]
    assert labels == ["train", "validation"]
    np.testing.assert_allclose(by_title["siwae"].get_lines()[1].get_ydata(),
                               history["val_siwae"])
    assert fig._suptitle.get_text().startswith(RUN)
    plots.pyplot().close(fig)
    # A loss that is not minus a bound (e.g. with a regulariser) keeps its panel.
    history["loss"] = [v + 0.5 for v in history["loss"]]
    fig = plots.training_curves_figure(history)
    assert "loss" in [ax.get_title() for ax in fig.axes]
    plots.pyplot().close(fig)


def test_posterior_density_names_x_and_has_a_colorbar(data):
    x, labels = data
    model = _vae(latent_dim=2, components=2)
    fig = plots.posterior_density_figure(model, x[0], grid=20, x_name="test example 0",
                                         run=RUN,
                                         true_log_posterior=lambda z: -np.sum(z ** 2, -1))
    colorbars = [ax for ax in fig.axes if ax.get_ylabel() == "density / its maximum"]
    assert len(colorbars) == 2  # one per panel
    panels = [ax for ax in fig.axes if ax.get_xlabel() == "z1"]
    assert len(panels) == 2 and all(ax.get_ylabel() == "z2" for ax in panels)
    title = fig._suptitle.get_text()
    assert title == f"{RUN}: posterior of test example 0"
    assert "[" not in title  # no pixel values
    plots.pyplot().close(fig)


def test_reconstructions_and_component_modes_share_one_grey_convention(data):
    x, _ = data
    model = _vae(latent_dim=2, components=3)
    fig = plots.reconstruction_grid_figure(model, x, x, (4, 4, 1), n=8)
    grid_image = fig.axes[0].get_images()[0]
    title = f"{RUN}: decoded component modes (Morningstar et al., ADVI with mixtures, C.3)"
    modes_fig = plots.plot_component_modes(model, x[:2], (4, 4), targets=x[:2], title=title)
    # The title names the run and is wrapped to the (narrow) figure, not cropped.
    lines = modes_fig._suptitle.get_text().split("\n")
    assert " ".join(lines) == title and len(lines) > 1
    assert max(map(len, lines)) <= 11 * modes_fig.get_figwidth()
    mode_images = [im for ax in modes_fig.axes for im in ax.get_images()]
    assert len(mode_images) == 2 * 4
    for image in [grid_image] + mode_images:
        assert image.get_cmap().name == plots.IMAGE_CMAP == "gray_r"  # ink dark on light
        assert image.get_clim() == (0, 1)
    # The grid's separators are background (0 = light), not ink.
    canvas = np.asarray(grid_image.get_array())
    assert np.all(canvas[4, :] == 0) and np.all(canvas[:, 4] == 0)
    plots.pyplot().close(fig)
    plots.pyplot().close(modes_fig)


def test_mim_figures_name_the_paper_and_label_units(data):
    rows = [dict(model=m, hidden=h, seed=s, mi=1.0 + s, nll=2.0, rmse=0.1, knn5=0.9)
            for m in ("mim", "vae") for h in (5, 20) for s in (0, 1)]
    fig = plots.mim.figure2_figure(rows, run=RUN)
    assert "Livne et al." in fig._suptitle.get_text() and RUN in fig._suptitle.get_text()
    assert [ax.get_ylabel() for ax in fig.axes] == [
        "mi (nats)", "nll (nats)", "rmse (data units)", "knn5 (fraction correct)"]
    plots.pyplot().close(fig)


def test_backend_is_set_in_one_place_only():
    uses = [p.relative_to(ROOT).as_posix() for p in (ROOT / "tfvi").rglob("*.py")
            if re.search(r"matplotlib\.use\(", p.read_text())]
    assert uses == ["tfvi/plots/__init__.py"]


def test_evaluation_draws_nothing():
    """Plots live in tfvi.plots only: no evaluation module imports matplotlib or tfvi.plots."""
    for path in (ROOT / "tfvi" / "evaluation").glob("*.py"):
        text = path.read_text()
        assert "matplotlib" not in text and "tfvi.plots" not in text.replace(
            "`tfvi.plots.", ""), path.name


def test_representation_metrics_live_in_evaluation_not_in_plots(data):
    x, labels = data
    model = _vae(latent_dim=2)
    # The MIM family computes no metric through a plotting module.
    family = (ROOT / "tfvi" / "launch" / "families" / "mim.py").read_text()
    assert "mim_plots" not in family
    # RMSE: the decoder mean at one z ~ q(z|x) (same seed), computed independently.
    import tensorflow as tf

    z = model.encoder(tf.constant(x)).sample(seed=tf.constant([5, 3], tf.int32))
    expected = reconstruction_rmse(x, model.decoder(z).mean().numpy())
    out = representation_metrics(model, x, labels=labels, train_codes=np.asarray(model(x)),
                                 train_labels=labels, seed=5, knn_k=(1,))
    assert out["reconstruction_rmse"] == pytest.approx(expected, rel=1e-6)
    assert out["knn1_accuracy"] == 1.0  # 1-NN on its own training codes
    np.testing.assert_allclose(reconstructions(model, x, 5),
                               model.decoder(z).mean().numpy(), rtol=1e-6)
