"""MIM and A-MIM: the Mutual Information Machine of Livne, Swersky & Fleet, "MIM: Mutual
Information Machine", as a `keras.Model` with a custom `train_step`.

MIM fits an encoder q(z|x) and a decoder p(x|z) to the *mixture* of the two anchored
joints, M_S = 1/2 (P(x) q(z|x) + P(z) p(x|z)) (P(x): the data, P(z): the latent
anchor, N(0, I) by default), with the loss of Livne et al. eq. (8):

    L_MIM = 1/2 (CE(M_S, q(x, z)) + CE(M_S, p(x, z)))
          = E_{M_S}[ -1/2 (log q(z|x) + log q(x) + log p(x|z) + log p(z)) ],

estimated per step with `N` encoding samples (x from the batch, z ~ q(z|x)) and `N`
decoding samples (z ~ P(z), x ~ p(x|z)), each half weighted 1/2 (Algorithms 1 and 2).
p(z) is the model prior (`prior`; it may equal the anchor or be learned: mixture of
Gaussians, VampPrior). q(x) is, by default, the marginal of the decoding distribution
q(x) = E_p(z)[p(x|z)] (section 4.2, eq. 16), replaced by its one-sample Jensen bound

    log q(x) >= log p(x|z') + log p(z') - log q(z'|x),    z' ~ q(z|x),

which makes the estimate an upper bound on eq. (8) (Algorithm 2; on encoding samples
z' is the sample itself, so the q-joint there equals log p(x|z) + log p(z)). Any
explicit density layer over x can be given as `data_prior` instead (Algorithm 1).

`symmetric=False` is A-MIM (eq. 13): only encoding samples, L_A-MIM =
E_{P(x) q(z|x)}[-1/2 (log q(x, z) + log p(x, z))].

Decoding samples x ~ p(x|z) are reparameterised when the decoder's distribution is
(Gaussian, logit-normal); for discrete decoders (Bernoulli) the sample carries no
gradient and the decoder gets the score-function term of Appendix D.2, with a
leave-one-out batch baseline to cut its variance.

The model shares the core of every tfvi model (`tfvi.models.core`: the parts,
`log_weight_terms`, `bound_values`, seeding, replica loss scaling, the XLA default of
`compile`, serialisation): mixture encoders are handled through stratified samples
exactly as in the VAE.
"""

from typing import Any

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvi import bounds
from tfvi.layers.priors import StandardNormal
from tfvi.models.core import LatentVariableModel, deserialize_part, replica_loss_scale, \
    unpack_batch
from tfvi.training.warmup import DecoderWeightWarmup

__all__ = ["MIM", "DecoderWeightWarmup", "mim_callbacks"]

_FULL_DECODER_WEIGHT = 0.5


@keras.saving.register_keras_serializable(package="tfvi")
class MIM(LatentVariableModel):
    """Mutual Information Machine (symmetric) or A-MIM (`symmetric=False`).

    Args:
      encoder: a tfvi encoder (Gaussian or mixture) for q(z|x).
      decoder: a tfvi decoder for p(x|z).
      prior: the model prior p(z); default `StandardNormal(latent_dim)` (= the anchor).
      symmetric: True for MIM (encoding and decoding samples), False for A-MIM
        (encoding samples only, eq. 13).
      data_prior: None for the marginal q(x) = E_p(z)[p(x|z)] (Algorithm 2), or a
        layer whose `call()` returns a distribution over x with event `[input_dim]`
        (e.g. `tfvi.priors.MixtureOfGaussians(input_dim)`, a learned q(x)).
      latent_anchor: the anchor P(z) the decoding samples start from; a prior layer,
        default `StandardNormal(latent_dim)`.
      decoder_weight: weight of the decoding half of M_S, 1/2 in eq. (8). Held in the
        non-trainable variable `model.decoder_weight` so that `DecoderWeightWarmup`
        can raise it from 0 to 1/2 (section 5) without retracing.
      input_dim: if given, every variable is created now (needed under a strategy).
      seed: seed of the sampling noise.

    Metrics per epoch: `loss` (the trained loss, with the current decoder weight),
    `mim` (eq. 8 estimate, decoder weight 1/2; A-MIM: eq. 13), `encoding_ce` and
    `decoding_ce` (E[l] over each half, see `tfvi.bounds.mim_cross_entropy`),
    `regularizer` (R_MIM of eq. 10, >= 0) and the VAE diagnostics `elbo`,
    `reconstruction`, `kl` on the encoding samples. `evaluate` reports `loss = mim`.

    `model.beta` (1 by default; the VAE's variable, so `tfvi.training.KLWarmup(N,
    start=0.0)` schedules it) weighs log p(z) wherever it enters the joints, as the
    authors' code warms up its prior term (`log p(z) = log p(z1) + beta log p(z2)`).
    On encoding samples with the marginal q(x), log q(z|x) cancels against the Jensen
    bound and the loss is E_q[-log p(x|z) - beta log p(z)]: with an encoder-sharing
    VampPrior nothing opposes shrinking every posterior onto one code, so without this
    warm-up A-MIM collapses (`experiments/mim_collapse.py`).
    """

    def __init__(self, encoder: keras.layers.Layer, decoder: keras.layers.Layer,
                 prior: keras.layers.Layer | None = None, symmetric: bool = True,
                 data_prior: keras.layers.Layer | None = None,
                 latent_anchor: keras.layers.Layer | None = None,
                 decoder_weight: float = _FULL_DECODER_WEIGHT, input_dim: int | None = None,
                 seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(encoder, decoder, prior, seed=seed, **kwargs)
        if not isinstance(symmetric, bool):
            raise ValueError(f"`symmetric` must be True (MIM) or False (A-MIM); got {symmetric!r}.")
        if not 0.0 <= float(decoder_weight) <= 1.0:
            raise ValueError(f"`decoder_weight` must be in [0, 1]; got {decoder_weight!r}.")
        self.symmetric = symmetric
        self.data_prior = deserialize_part(data_prior)
        latent_anchor = deserialize_part(latent_anchor)
        self.latent_anchor = (latent_anchor if latent_anchor is not None
                              else StandardNormal(self.encoder.latent_dim, name="latent_anchor"))
        if self.latent_anchor.latent_dim != self.encoder.latent_dim:
            raise ValueError(
                f"`latent_anchor` has latent_dim {self.latent_anchor.latent_dim} but the "
                f"encoder has latent_dim {self.encoder.latent_dim}."
            )
        # Variables, not floats: warm-ups (`KLWarmup`, `DecoderWeightWarmup`) assign
        # them; this order is the saved order of the model's own variables.
        self.beta = keras.Variable(1.0, trainable=False, name="beta")
        self.decoder_weight = keras.Variable(float(decoder_weight), trainable=False,
                                             name="decoder_weight")
        self.finish_init(input_dim)

    def metric_names(self):
        return ("loss", "mim", "encoding_ce", "decoding_ce", "regularizer", "elbo",
                "reconstruction", "kl")

    def build(self, input_shape):
        super().build(input_shape)
        if not self.latent_anchor.built:
            self.latent_anchor.build()
        if self.data_prior is not None and not self.data_prior.built:
            self.data_prior.build(None)
        self.built = True

    # ---------------------------------------------------------------- the math
    def _prior_weighted(self, terms):
        """`(log p(x|z), beta log p(z), log q(z|x))` of `log_weight_terms`."""
        return (terms["log_likelihood"], tf.convert_to_tensor(self.beta) * terms["log_prior"],
                terms["log_posterior"])

    def _log_data_prior(self, x, seed, params):
        """log q(x) `[batch]`: the explicit `data_prior`, or the one-sample Jensen
        bound on the decoder marginal (stratified over mixture components);
        `params` are `encoder.posterior_parameters(x)`."""
        if self.data_prior is not None:
            return self.data_prior().log_prob(x)
        t = self.log_weight_terms(x, samples=1, seed=seed, params=params)
        return bounds.selbo(bounds.log_weights(*self._prior_weighted(t)), t["log_alpha"])

    def mim_terms(self, x, seed=None):
        """Log-joints of both model factorisations on encoding and decoding samples.

        Args:
          x: a data batch `[batch, input_dim]` (samples of P(x)).
          seed: stateless seed `[2]`; drawn from the model's generator if None.

        Returns:
          dict with
          `encoding`: `log_q_joint`, `log_p_joint` (`[1, K, batch]`, stratified over
            the K posterior components), `log_alpha` `[K, batch]`, and the VAE `terms`;
          `decoding` (symmetric MIM only): `log_q_joint`, `log_p_joint`,
            `log_likelihood` (`[batch]`), `x` and `z` (the decoding samples) and
            `reparameterized` (a Python bool: whether x carries a gradient).
        """
        seed = self.next_seed() if seed is None else seed
        s_enc, s_z, s_x, s_q = tf.unstack(tfp.random.split_seed(seed, n=4))
        terms = self.log_weight_terms(x, samples=1, seed=s_enc)
        ll, lp, lq = self._prior_weighted(terms)
        log_p_joint = ll + lp
        if self.data_prior is None:
            # Jensen bound with z' = z: log q(z|x) + log q(x) ~ log p(x|z) + log p(z).
            log_q_joint = lq + bounds.log_weights(ll, lp, lq)
        else:
            log_q_joint = lq + self.data_prior().log_prob(x)
        out = {"encoding": {"log_q_joint": log_q_joint, "log_p_joint": log_p_joint,
                            "log_alpha": terms["log_alpha"], "terms": terms}}
        if not self.symmetric:
            return out
        out["decoding"] = self._decoding_terms(tf.shape(x)[0], s_z, s_x, s_q)
        return out

    def _decoding_terms(self, batch, s_z, s_x, s_q):
        """The decoding half: z ~ P(z), x ~ p(x|z), both joints on (x, z)."""
        z = self.latent_anchor().sample(batch, seed=s_z)
        p_x = self.decoder(z)
        x_dec = p_x.sample(seed=s_x)
        reparameterized = (
            p_x.reparameterization_type == tfp.distributions.FULLY_REPARAMETERIZED)
        if not reparameterized:
            x_dec = tf.stop_gradient(x_dec)
        log_likelihood = p_x.log_prob(self.decoder.prepare_targets(x_dec))
        params = self.encoder.posterior_parameters(x_dec)  # q(z|x_dec), once for both terms
        log_q = self.encoder.distribution(params).log_prob(z)
        return {
            "log_q_joint": log_q + self._log_data_prior(x_dec, s_q, params),
            "log_p_joint": log_likelihood + tf.convert_to_tensor(self.beta)
            * self.prior().log_prob(z),
            "log_likelihood": log_likelihood,
            "x": x_dec,
            "z": z,
            "reparameterized": reparameterized,
        }

    def mim_values(self, x, seed=None, decoder_weight=None):
        """Per-example values `[batch]` (a dict) and the scalar loss to minimise.

        Returns `(loss, values)`; `values` has `mim`, `encoding_ce`, `decoding_ce`,
        `regularizer` (per example, `[batch]`) and the VAE `elbo`,
        `reconstruction`, `kl`; `loss` is the training loss with `decoder_weight`
        (the model's variable if None) and the score-function surrogate for
        non-reparameterised decoders (its value equals the plain loss).
        """
        w = tf.convert_to_tensor(self.decoder_weight) if decoder_weight is None else decoder_weight
        t = self.mim_terms(x, seed)
        enc = t["encoding"]
        # l = -1/2 (log q(x,z) + log p(x,z)); bounds.mim_cross_entropy splits q(x,z)
        # into q(z|x) q(x), which we pass pre-summed.
        enc_ce = bounds.selbo(
            bounds.mim_cross_entropy(enc["log_q_joint"], 0.0, enc["log_p_joint"], 0.0),
            enc["log_alpha"])
        enc_reg = bounds.selbo(
            bounds.mim_regularizer(enc["log_q_joint"], enc["log_p_joint"]), enc["log_alpha"])
        values = self.bound_values(enc["terms"])
        values["encoding_ce"] = enc_ce
        if self.symmetric:
            dec = t["decoding"]
            dec_ce = bounds.mim_cross_entropy(dec["log_q_joint"], 0.0, dec["log_p_joint"], 0.0)
            dec_reg = bounds.mim_regularizer(dec["log_q_joint"], dec["log_p_joint"])
            values["decoding_ce"] = dec_ce
            values["mim"] = 0.5 * (enc_ce + dec_ce)
            values["regularizer"] = 0.5 * (enc_reg + dec_reg)
            dec_loss = dec_ce
            if not dec["reparameterized"]:
                dec_loss = dec_ce + self._score_function_surrogate(
                    dec_ce, dec["log_likelihood"])
            loss = 0.5 * tf.reduce_mean(enc_ce) + w * tf.reduce_mean(dec_loss)
        else:
            values["decoding_ce"] = tf.zeros_like(enc_ce)
            values["mim"] = enc_ce
            values["regularizer"] = enc_reg
            loss = tf.reduce_mean(enc_ce)
        return loss, values

    @staticmethod
    def _score_function_surrogate(values, log_prob):
        """Zero-valued term whose gradient is (l - b) grad log p(x|z) (Appendix D.2),
        with the leave-one-out batch mean of l as the baseline b."""
        values = tf.stop_gradient(values)
        n = tf.cast(tf.shape(values)[0], values.dtype)
        baseline = (tf.reduce_sum(values) - values) / tf.maximum(n - 1.0, 1.0)
        advantage = values - baseline
        return advantage * log_prob - tf.stop_gradient(advantage * log_prob)

    # -------------------------------------------------------------- Keras steps
    def train_step(self, data):
        x, _ = unpack_batch(data)
        with tf.GradientTape(persistent=True) as tape:
            loss, values = self.mim_values(x)
            losses = {"all": loss * replica_loss_scale()}
        self.apply_losses(tape, losses)
        return self.update_metrics(loss, values)

    def test_step(self, data):
        x, _ = unpack_batch(data)
        _, values = self.mim_values(x, decoder_weight=_FULL_DECODER_WEIGHT)
        return self.update_metrics(tf.reduce_mean(values["mim"]), values)

    # ----------------------------------------------------------- serialisation
    def get_config(self):
        config = super().get_config()
        config.update(
            symmetric=self.symmetric,
            data_prior=(keras.saving.serialize_keras_object(self.data_prior)
                        if self.data_prior is not None else None),
            latent_anchor=keras.saving.serialize_keras_object(self.latent_anchor),
            decoder_weight=float(self.decoder_weight.numpy()),
        )
        return config


def mim_callbacks(warmup_epochs: int,
                  monitor: str = "val_loss") -> list[keras.callbacks.Callback]:
    """Section 5's schedule: the decoder-weight warm-up and early stopping on the
    validation MIM loss with patience equal to the warm-up length, counted from the
    end of the warm-up, restoring the best weights. Pass `validation_data` to `fit`
    (`monitor="loss"` stops on the training loss instead)."""
    return [
        DecoderWeightWarmup(warmup_epochs),
        keras.callbacks.EarlyStopping(monitor=monitor, patience=max(warmup_epochs, 1),
                                      start_from_epoch=warmup_epochs,
                                      restore_best_weights=True),
    ]
