"""`--model=vib`: `tfvi.models.VIBClassifier` (Morningstar et al., B.1), with `--burn_in_epochs`
(B.3) and posterior-predictive accuracy / ECE in metrics.json.

    tfvi-train --model=vib --dataset=digits --view=single_column --target=label \
      --posterior=mixture --components=5 --covariance=full --latent_dim=2 \
      --encoder_hidden=128,128,128,128 --activation=elu --prior=mog \
      --objective=siwae --samples=5 --beta=0.05 --burn_in_epochs=1
"""

from absl import flags as absl_flags

from tfvi import bounds, estimators, models
from tfvi.launch.families.burn_in_flags import burn_in_callbacks
from tfvi.launch.families.vae import build_parts
from tfvi.launch.registry import ModelFamily, register_model
from tfvi.launch.report import evaluate_representation

absl_flags.DEFINE_integer("predict_samples", 1000, "S posterior samples per example of "
                          "the posterior predictive (accuracy, ECE; 10^4 in Morningstar et al.).")
absl_flags.DEFINE_string("gradient_estimator", "reparam", "Gradient estimator of the VIB: "
                         f"{', '.join(estimators.ESTIMATORS)}.")


def build_vib(flags, prepared):
    encoder, classifier, prior = build_parts(flags, prepared)
    return models.VIBClassifier(encoder, classifier, prior, objective=flags.objective,
                                samples=flags.samples, beta=flags.beta, stl=flags.stl,
                                gradient_estimator=flags.gradient_estimator,
                                input_dim=prepared.input_dim, seed=flags.seed, name="vib")


def check_vib_flags(flags):
    if flags.target != "label":
        raise ValueError(f"--model=vib needs --target=label; got --target={flags.target}.")
    if flags.posterior == "mixture" and flags.components > 1 and \
            flags.objective in ("elbo", "iwae"):
        raise ValueError(
            f"--objective={flags.objective} is not supported with a {flags.components}-"
            "component mixture posterior; accepted values: selbo, siwae, miwae, ciwae, "
            "piwae, ppd (or --components=1).")
    estimators.check_estimator(flags.gradient_estimator, flags.objective)


def vib_callbacks(model, prepared, flags):
    return burn_in_callbacks(model, prepared, flags)


def _predictive(model, x, y, flags):
    """`(probs [n, classes], labels [n])` on the first `--eval_max_examples` of a split."""
    from tfvi.evaluation import calibration

    n = min(len(x), flags.eval_max_examples or len(x))
    probs = calibration.posterior_predictive(model, x[:n], flags.predict_samples,
                                             batch_size=flags.batch_size, seed=flags.seed)
    return probs, y[:n]


def evaluate_vib(model, prepared, flags):
    """Posterior-predictive accuracy and ECE, and the representation figures of
    z (KSG MI, k-NN accuracy; no RMSE: the decoder predicts labels)."""
    from tfvi.evaluation import calibration

    out = evaluate_representation(model, prepared, flags, reconstruct=False)
    for split, (x, y, _) in prepared.eval_splits.items():
        probs, labels = _predictive(model, x, y, flags)
        out.setdefault(split, {}).update({
            "accuracy": calibration.accuracy(probs, labels),
            "ece": calibration.expected_calibration_error(probs, labels),
            "predictive_samples": flags.predict_samples,
        })
    return out


def plot_vib(model, prepared, flags, plot_dir):
    """The test split's reliability diagram (Morningstar et al. B.1 bins): plots/reliability.png."""
    import os

    from tfvi import plots

    x, y, _ = prepared.eval_splits["test"]
    probs, labels = _predictive(model, x, y, flags)
    path = os.path.join(plot_dir, "reliability.png")
    fig = plots.plot_reliability_diagram(
        probs, labels,
        title=f"{plots.run_name(flags)}:\nreliability, test split (K={flags.components}, "
              f"T={flags.samples}; Morningstar et al. B.1 bins)")
    fig.axes[0].title.set_fontsize(8)
    return [plots.save_figure(fig, path)]


register_model(ModelFamily(
    name="vib", build=build_vib, objectives=tuple(bounds.ALL_OBJECTIVES),
    help="VIB classifier with (mixture) posteriors (tfvi.models.VIBClassifier)",
    check_flags=check_vib_flags, evaluate=evaluate_vib, callbacks=vib_callbacks,
    exportable=False, plots=plot_vib,
    summary_metrics=("accuracy", "ece", "ksg_mutual_information", "knn5_accuracy"),
    # Morningstar et al. B.1: the VIB predicts the label, with beta = 0.05 (the generic
    # --beta=1.0 collapses it to chance accuracy).
    defaults={"target": "label", "beta": 0.05}))
