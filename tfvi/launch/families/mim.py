"""`--model=mim` / `--model=amim`: `tfvi.models.MIM` (seed 003), symmetric or A-MIM,
with the decoder-weight warm-up and early stopping of section 5, and the
representation metrics (KSG MI, k-NN accuracy, RMSE, k-means purity/NMI) in
metrics.json.

    tfvi-train --model=mim --objective=mim --dataset=digits --posterior=gaussian \
      --prior=mog --validation_fraction=0.1 --mim_warmup_epochs=3 --workdir=runs/mim

`--objective` must be `mim` (the model trains the MIM loss, eq. 8 / eq. 13).
"""

import keras
import numpy as np
from absl import flags as absl_flags

from tfvi import models
from tfvi.launch.families.vae import build_parts
from tfvi.launch.registry import ModelFamily, register_model

absl_flags.DEFINE_integer("mim_warmup_epochs", 3, "--model=mim|amim: epochs over which the "
                          "decoder weight rises from 0 to 1/2; also the early-stopping "
                          "patience on the validation MIM loss (seed 003, section 5).")
absl_flags.DEFINE_integer("mim_ksg_points", 3000, "--model=mim|amim: at most this many "
                          "(x, z) test pairs for the KSG mutual information.")


def _builder(symmetric):
    def build(flags, prepared):
        encoder, decoder, prior = build_parts(flags, prepared)
        return models.MIM(encoder, decoder, prior, symmetric=symmetric,
                          input_dim=prepared.input_dim, seed=flags.seed,
                          name="mim" if symmetric else "amim")
    return build


def mim_callbacks(model, prepared, flags):
    """The warm-up; with a validation split (--validation_fraction) and no launcher-wide
    --early_stopping_patience, also section 5's early stopping (patience = warm-up)."""
    warmup = models.DecoderWeightWarmup(flags.mim_warmup_epochs)
    if "validation" not in prepared.eval_splits or flags.early_stopping_patience:
        return [warmup]
    return [warmup, keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=max(flags.mim_warmup_epochs, 1),
        start_from_epoch=flags.mim_warmup_epochs, restore_best_weights=True)]


def evaluate_mim(model, prepared, flags):
    """Representation metrics per split (k-NN classifiers are fitted on train codes)."""
    from tfvi import mim_plots
    from tfvi.evaluation import (cluster_scores, knn_accuracy, ksg_mutual_information,
                                 latent_codes, reconstruction_rmse)

    x_tr, _, labels_tr = prepared.eval_splits["train"]
    codes_tr = latent_codes(model, x_tr)
    out = {}
    for split, (x, y, labels) in prepared.eval_splits.items():
        n = min(len(x), flags.eval_max_examples or len(x))
        x, y = x[:n], (x if y is None else y)[:n]
        codes = latent_codes(model, x)
        metrics = {
            "ksg_mutual_information": ksg_mutual_information(  # images as vectors
                x.reshape(len(x), -1), latent_codes(model, x, sample=True, seed=flags.seed), k=5,
                max_points=flags.mim_ksg_points, seed=flags.seed),
            "reconstruction_rmse": reconstruction_rmse(y, mim_plots.reconstruct(
                model, x, flags.seed)),
        }
        if labels is not None and labels_tr is not None:
            labels = np.asarray(labels)[:n]
            for k, acc in knn_accuracy(codes_tr, labels_tr, codes, labels,
                                       k=[1, 3, 5, 10]).items():
                metrics[f"knn{k}_accuracy"] = acc
            scores = cluster_scores(codes, labels, seed=flags.seed)
            metrics["kmeans_purity"], metrics["kmeans_nmi"] = scores["purity"], scores["nmi"]
        out[split] = metrics
    return out


def mim_estimators(flags, model):
    """metrics.json "estimators" entries for MIM/A-MIM. The loss is eq. 8 (eq. 13),
    not a bound with `--samples` importance samples and `--beta`: those flags are
    not used, so the generic "samples_per_component"/"beta" fields are dropped."""
    symmetric = bool(model.symmetric)
    return {
        "bounds": {
            "objective": "mim" if symmetric else "amim",
            "loss": ("L_MIM, seed 003 eq. 8: 1/2 (encoding CE + decoding CE)" if symmetric
                     else "L_A-MIM, seed 003 eq. 13: encoding samples only"),
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
                "num_samples": flags.eval_iwae_samples, "stratified": True,
                "seed": flags.seed, "log_mean_exp": "float64"},
        "representation": {"ksg_mutual_information": f"KSG k=5 on (x, one z ~ q(z|x)), "
                           f"at most {flags.mim_ksg_points} pairs",
                           "knn_accuracy": "k-NN on posterior means, fitted on the "
                           "train split's codes, k in 1, 3, 5, 10",
                           "reconstruction_rmse": "x -> z ~ q(z|x) -> mean of p(x|z)",
                           "kmeans": "k-means on posterior means, k = number of labels"},
    }


for _name, _symmetric in (("mim", True), ("amim", False)):
    register_model(ModelFamily(
        name=_name, build=_builder(_symmetric), objectives=("mim",),
        help=("Mutual Information Machine (tfvi.models.MIM, seed 003)" if _symmetric
              else "asymmetric MIM, encoding samples only (tfvi.models.MIM(symmetric=False))"),
        evaluate=evaluate_mim, callbacks=mim_callbacks, estimators=mim_estimators))
