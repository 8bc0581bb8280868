"""The generic figures of a `tfvi-train` run, written into plots/ at the end: samples,
reconstructions, the latent scatter, training curves, the decoded mixture components
and, for 2-D latents, the posterior density."""

import os

def _component_modes_plot(model, prepared, x, target, plot_dir, run=None):
    """Morningstar et al.'s C.3 / C.7 template figure: the decoded mode (C.3) or mean (C.7, the
    style view) of each mixture component, next to the input image when the encoder
    sees a whole image, else next to the target."""
    import numpy as np

    from tfvi import plots

    shape = prepared.bundle.image_shape
    labels = prepared.eval_splits["test"][2]
    rows = np.arange(min(8, len(x)))
    if labels is not None:  # one example per class where possible
        rows = np.argsort(labels, kind="stable")[::max(1, len(labels) // 8)][:8]
    shows_input = x.shape[1] == int(np.prod(shape))
    kind = "mean" if prepared.target == "same_class_random" else "mode"
    path = os.path.join(plot_dir, "component_modes.png")
    fig = plots.plot_component_modes(
        model, x[rows], shape, targets=(x if shows_input else target)[rows], path=path,
        kind=kind, targets_title="input" if shows_input else "target",
        title=f"{run + ': ' if run else ''}decoded component {kind}s (Morningstar et al., "
              "ADVI with mixtures, C.3/C.7)")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def has_mean_images(model):
    """False for a PixelCNN p(x|z) (`--likelihood=pixelcnn`, `conv_hvae_pixelcnn`): its
    mean has no closed form, and a sample costs one network pass per pixel, so the
    sample/reconstruction images are left out."""
    from tfvi.layers import PixelCNNDecoder

    return not isinstance(getattr(model, "decoder", None), PixelCNNDecoder)


def write_plots(model, prepared, config, history, plot_dir):
    """The generic plots/*.png of a run (`tfvi.training.outputs.write_outputs` adds the
    family's own); returns the paths written."""
    import numpy as np

    from tfvi import plots

    written = []
    run = plots.run_name(config)
    bundle = prepared.bundle
    x, y, labels = prepared.eval_splits["test"]
    target = x if y is None else y
    image_target = bundle.image_shape is not None and prepared.target != "label"
    if image_target and hasattr(model, "prior") and has_mean_images(model):
        written.append(plots.sample_grid(model, bundle.image_shape,
                                         os.path.join(plot_dir, "samples.png"), seed=config.seed,
                                         run=run))
        written.append(plots.reconstruction_grid(model, x, target, bundle.image_shape,
                                                 os.path.join(plot_dir, "reconstructions.png"),
                                                 run=run))
    written.append(plots.latent_scatter(model, x, labels, os.path.join(plot_dir, "latent.png"),
                                        run=run))
    if image_target and getattr(model.encoder, "num_components", 1) > 1:
        written.append(_component_modes_plot(model, prepared, x, target, plot_dir, run))
    curves = plots.training_curves(history, os.path.join(plot_dir, "training_curves.png"),
                                   run=run)
    if curves:
        written.append(curves)
    if model.latent_dim == 2 and hasattr(model, "log_weight_terms") and y is None:
        # The |z| toy's x = (1, ..., 1) has a posterior mode in every orthant.
        x0 = np.ones(x.shape[1], np.float32) if bundle.name == "abs_toy" else x[0]
        x_name = ("x = (1, ..., 1)" if bundle.name == "abs_toy" else "test example 0"
                  + ("" if labels is None else f" (label {int(labels[0])})"))

        def model_log_posterior(z):
            return model.log_joint(z, x0).numpy()

        written.append(plots.posterior_density(model, x0,
                                               os.path.join(plot_dir, "posterior_density.png"),
                                               true_log_posterior=model_log_posterior,
                                               x_name=x_name, run=run))
    return written
