"""`--model=vib`: `tfvi.models.VIBClassifier` (Morningstar et al., B.1), with `--burn_in_epochs`
(B.3) and posterior-predictive accuracy / ECE in metrics.json.

    tfvi-train --model=vib --dataset=digits --view=single_column --target=label \
      --posterior=mixture --components=5 --covariance=full --latent_dim=2 \
      --encoder_hidden=128,128,128,128 --activation=elu --prior=mog \
      --objective=siwae --samples=5 --beta=0.05 --burn_in_epochs=1
"""

from tfvi import bounds, estimators, models
from tfvi.launch.components import build_parts, check_mixture_objective
from tfvi.launch.registry import Flag, ModelFamily, register_model
from tfvi.launch.report import evaluate_representation
from tfvi.training.outputs import final_splits
from tfvi.validation import STRATIFIED_OBJECTIVES

FLAGS = (
    Flag("predict_samples", "integer", 1000, "S posterior samples per example of the "
         "posterior predictive (accuracy, ECE; 10^4 in Morningstar et al.).", minimum=1),
    Flag("gradient_estimator", "string", "reparam", "Gradient estimator of the VIB: "
         f"{', '.join(estimators.ESTIMATORS)}."),
)


def build_vib(config, prepared):
    encoder, classifier, prior = build_parts(config, prepared)
    return models.VIBClassifier(encoder, classifier, prior, objective=config.objective,
                                samples=config.samples, beta=config.beta, stl=config.stl,
                                gradient_estimator=config.gradient_estimator,
                                input_dim=prepared.input_dim, seed=config.seed, name="vib")


def check_vib_flags(config):
    if config.target != "label":
        raise ValueError(f"--model=vib needs --target=label; got --target={config.target}.")
    check_mixture_objective(config, STRATIFIED_OBJECTIVES + bounds.ABLATION_OBJECTIVES)
    estimators.check_estimator(config.gradient_estimator, config.objective)


def _predictive(model, x, y, config):
    """`(probs [n, classes], labels [n])` on the first `--eval_max_examples` of a split."""
    from tfvi.evaluation import calibration

    n = min(len(x), config.eval_max_examples or len(x))
    probs = calibration.posterior_predictive(model, x[:n], config.predict_samples,
                                             batch_size=config.batch_size, seed=config.seed)
    return probs, y[:n]


def evaluate_vib(model, prepared, config):
    """Posterior-predictive accuracy and ECE, and the representation figures of
    z (KSG MI, k-NN accuracy; no RMSE: the decoder predicts labels)."""
    from tfvi.evaluation import calibration

    out = evaluate_representation(model, prepared, config, reconstruct=False)
    for split, (x, y, _) in final_splits(prepared, config):
        probs, labels = _predictive(model, x, y, config)
        out.setdefault(split, {}).update({
            "accuracy": calibration.accuracy(probs, labels),
            "ece": calibration.expected_calibration_error(probs, labels),
            "predictive_samples": config.predict_samples,
        })
    return out


def plot_vib(model, prepared, config, plot_dir):
    """The test split's reliability diagram (Morningstar et al. B.1 bins): plots/reliability.png."""
    import os

    from tfvi import plots

    x, y, _ = prepared.eval_splits["test"]
    probs, labels = _predictive(model, x, y, config)
    path = os.path.join(plot_dir, "reliability.png")
    fig = plots.plot_reliability_diagram(
        probs, labels,
        title=f"{plots.run_name(config)}:\nreliability, test split (K={config.components}, "
              f"T={config.samples}; Morningstar et al. B.1 bins)")
    fig.axes[0].title.set_fontsize(8)
    return [plots.save_figure(fig, path)]


register_model(ModelFamily(
    name="vib", build=build_vib, objectives=tuple(bounds.ALL_OBJECTIVES),
    help="VIB classifier with (mixture) posteriors (tfvi.models.VIBClassifier)",
    flags=FLAGS, features=("burn_in",),
    check_flags=check_vib_flags, evaluate=evaluate_vib,
    exportable=False, plots=plot_vib,
    summary_metrics=("accuracy", "ece", "ksg_mutual_information", "knn5_accuracy"),
    # Morningstar et al. B.1: the VIB predicts the label, with beta = 0.05 (the generic
    # --beta=1.0 collapses it to chance accuracy).
    defaults={"target": "label", "beta": 0.05}))
