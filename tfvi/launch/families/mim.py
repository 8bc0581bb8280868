"""`--model=mim` / `--model=amim`: `tfvi.models.MIM` (Livne et al.), symmetric or A-MIM,
with the decoder-weight warm-up and early stopping of section 5, and the
representation metrics (KSG MI, k-NN accuracy, RMSE, k-means purity/NMI) in
metrics.json.

    tfvi-train --model=mim --objective=mim --dataset=digits --posterior=gaussian \
      --prior=mog --validation_fraction=0.1 --mim_warmup_epochs=3 --workdir=runs/mim

`--objective` must be `mim` (the model trains the MIM loss, eq. 8 / eq. 13).
"""

from tfvi import models
from tfvi.launch.components import build_parts
from tfvi.launch.registry import Flag, ModelFamily, register_model
from tfvi.launch.report import REPRESENTATION_METRICS, evaluate_representation

FLAGS = (
    Flag("mim_warmup_epochs", "integer", 3, "--model=mim|amim: epochs over which the "
         "decoder weight rises from 0 to 1/2; also the early-stopping patience on the "
         "validation MIM loss (Livne et al., section 5).", minimum=0),
    Flag("mim_ksg_points", "integer", 3000, "--model=mim|amim: at most this many (x, z) "
         "test pairs for the KSG mutual information (kept for old command lines; "
         "--ksg_points applies to every family).", minimum=1),
)


def _builder(symmetric):
    def build(config, prepared):
        encoder, decoder, prior = build_parts(config, prepared)
        return models.MIM(encoder, decoder, prior, symmetric=symmetric,
                          input_dim=prepared.input_dim, seed=config.seed,
                          name="mim" if symmetric else "amim")
    return build


def mim_callbacks(model, prepared, config):
    """The decoder-weight warm-up (section 5)."""
    return [models.DecoderWeightWarmup(config.mim_warmup_epochs)]


def mim_early_stopping_patience(config, prepared):
    """Section 5's early stopping on the validation MIM loss, with a validation split
    (--validation_fraction): patience = the warm-up length, counted from its end (the
    launcher starts early stopping where the warm-up ends)."""
    return max(config.mim_warmup_epochs, 1) if "validation" in prepared.eval_splits else 0


def evaluate_mim(model, prepared, config):
    """Representation metrics per split (`tfvi.launch.report.evaluate_representation`,
    shared by every latent-variable family; `--mim_ksg_points`, when given, overrides
    `--ksg_points`)."""
    return evaluate_representation(model, prepared, config, ksg_points=ksg_points(config))


def ksg_points(config):
    """KSG pairs: `--mim_ksg_points` when given (or in a namespace of stored flags,
    which hold no run-control `--ksg_points`), else `--ksg_points`."""
    given = getattr(config, "given", None)
    explicit = given is None or given("mim_ksg_points")
    return config.mim_ksg_points if explicit else config.ksg_points


def mim_estimators(config, model):
    """metrics.json "estimators" entries for MIM/A-MIM. The loss is eq. 8 (eq. 13),
    not a bound with `--samples` importance samples and `--beta`: those flags are
    not used, so the generic "samples_per_component"/"beta" fields are dropped."""
    symmetric = bool(model.symmetric)
    points = ksg_points(config)
    return {
        "bounds": {
            "objective": "mim" if symmetric else "amim",
            "loss": ("L_MIM, Livne et al. eq. 8: 1/2 (encoding CE + decoding CE)" if symmetric
                     else "L_A-MIM, Livne et al. eq. 13: encoding samples only"),
            "samples": ("one z ~ q(z|x) per example (stratified: one per posterior "
                        "component, weighted by its mixture weight)"
                        + ("; and one decoding pair z ~ P(z) = N(0, I), x ~ p(x|z) "
                           "per example" if symmetric else "")),
            "data_prior": ("marginal q(x) = E_p(z)[p(x|z)], one-sample Jensen bound "
                           "(Algorithm 2)" if model.data_prior is None
                           else type(model.data_prior).__name__),
            "components": int(getattr(model, "num_components", 1)),
            "note": "model.evaluate: mean over examples, one draw of the samples; "
                    "'loss' and 'mim' are the loss with the full decoder weight 1/2, "
                    "'elbo'/'reconstruction'/'kl' the VAE diagnostics on the encoding "
                    "samples",
        },
        "nll": {"estimator": "iwae", "proposal": "the encoder q(z|x) (the MIM encoder "
                "as importance distribution)", "model": "p(z) p(x|z)",
                "num_samples": config.eval_iwae_samples, "stratified": True,
                "seed": config.seed, "log_mean_exp": "float64"},
        "representation": {"ksg_mutual_information": f"KSG k=5 on (x, one z ~ q(z|x)), "
                           f"at most {points} pairs",
                           "knn_accuracy": "k-NN on posterior means, fitted on the "
                           "train split's codes, k in 1, 3, 5, 10",
                           "reconstruction_rmse": "x -> z ~ q(z|x) -> mean of p(x|z)",
                           "kmeans": "k-means on posterior means, k = number of labels"},
    }


for _name, _symmetric in (("mim", True), ("amim", False)):
    register_model(ModelFamily(
        name=_name, build=_builder(_symmetric), objectives=("mim",),
        help=("Mutual Information Machine (tfvi.models.MIM, Livne et al.)" if _symmetric
              else "asymmetric MIM, encoding samples only (tfvi.models.MIM(symmetric=False))"),
        flags=FLAGS, evaluate=evaluate_mim, callbacks=mim_callbacks, estimators=mim_estimators,
        early_stopping_patience=mim_early_stopping_patience,
        summary_metrics=REPRESENTATION_METRICS,
        defaults={"objective": "mim"}))
