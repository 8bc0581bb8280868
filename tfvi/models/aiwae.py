"""AIWAE: the annealed importance weighted auto-encoder (Ding & Freedman, Algorithm 1).

theta (decoder and any learned prior) follows the AIS estimate of the gradient of
log p(x) (Ding & Freedman, eq. 10 with AIS in place of importance sampling):

    delta_theta = sum_k w~_k grad_theta log p_theta(x, z_k),

where z_k (k = 1..K) are the final states of K AIS chains started at q_phi(z|x) along
f_t = q^(1 - beta_t) p(x, z)^beta_t with beta_t = t / (T - 1) (section 5.1), one HMC
transition of L leapfrog steps per temperature, and w~ the normalised AIS weights
(eq. 8). The chains and weights are constants for the gradient (stop_gradient), so no
backpropagation runs through the T - 1 transitions and memory does not grow with T.

phi (encoder) follows the reparameterised ELBO gradient (eq. 2), K samples.

The HMC step size of each temperature is a non-trainable variable `step_sizes`
`[T - 1]` (saved with the model), multiplied per example and dimension by q's standard
deviation and adapted after every training step towards acceptance 0.6:
`eps_t <- eps_t * exp(rate * (acceptance_t - 0.6))` (the authors adapt multiplicatively,
x1.002 / x0.998 per step).

Metrics: `loss` (= -IWAE-K, a bound comparable with the VAE's), `iwae`, `elbo`,
`reconstruction`, `kl`, `acceptance` (mean HMC acceptance over temperatures).
"""

import keras
import numpy as np
import tensorflow as tf

from tfvi.mcmc.ais import ais_chain
from tfvi.mcmc.step_size import adapt_log_step_size
from tfvi.models.core import LatentVariableModel, replica_loss_scale, unpack_batch
from tfvi.validation import check_objective_for_components, check_positive_int

__all__ = ["AIWAE"]

# Keys of configs saved when AIWAE subclassed VAE; they never had an effect.
_LEGACY_CONFIG_KEYS = ("objective", "beta", "stl", "objective_options",
                       "gradient_estimator", "qz_regularizer")


@keras.saving.register_keras_serializable(package="tfvi")
class AIWAE(LatentVariableModel):
    """Annealed importance weighted auto-encoder (Ding & Freedman).

    Args:
      encoder, decoder, prior: as for `tfvi.models.VAE` (a unimodal encoder).
      samples: K, the number of annealed importance weighted samples (AIS chains).
      temperatures: T >= 2, inverse temperatures evenly spaced in [0, 1] (T - 1 HMC
        transitions; T = 2 is one transition at beta = 1).
      leapfrog_steps: L per HMC transition (5 in Ding & Freedman).
      target_accept_prob: acceptance the step sizes are adapted towards (0.6).
      initial_step_size: starting value of every temperature's step size.
      step_size_adaptation_rate: gain of the per-step multiplicative adaptation.
      input_dim, seed: as for `VAE`.
    """

    def __init__(self, encoder, decoder, prior=None, samples=5, temperatures=5,
                 leapfrog_steps=5, target_accept_prob=0.6, initial_step_size=0.1,
                 step_size_adaptation_rate=0.1, input_dim=None, seed=None, **kwargs):
        super().__init__(encoder, decoder, prior, seed=seed, **kwargs)
        check_objective_for_components("iwae", self.num_components, allowed=(),
                                       name="AIWAE's bound", components_name="num_components")
        self.samples = check_positive_int("samples", samples)
        self.temperatures = check_positive_int("temperatures", temperatures)
        if self.temperatures < 2:
            raise ValueError(f"`temperatures` must be >= 2; got {temperatures!r}.")
        self.leapfrog_steps = check_positive_int("leapfrog_steps", leapfrog_steps)
        if not 0.0 < target_accept_prob < 1.0:
            raise ValueError(
                f"`target_accept_prob` must be in (0, 1); got {target_accept_prob!r}.")
        if not initial_step_size > 0:
            raise ValueError(
                f"`initial_step_size` must be positive; got {initial_step_size!r}.")
        self.target_accept_prob = float(target_accept_prob)
        self.initial_step_size = float(initial_step_size)
        self.step_size_adaptation_rate = float(step_size_adaptation_rate)
        self.step_sizes = keras.Variable(
            np.full([self.temperatures - 1], self.initial_step_size, np.float32),
            trainable=False, name="step_sizes", aggregation="mean")
        self.betas = tf.constant(np.linspace(0.0, 1.0, self.temperatures), tf.float32)
        self.finish_init(input_dim)

    @classmethod
    def from_config(cls, config):
        config = {k: v for k, v in config.items() if k not in _LEGACY_CONFIG_KEYS}
        return cls(**config)

    def load_own_variables(self, store):
        if len(store.keys()) == 2:  # saved when AIWAE subclassed VAE: [beta, step_sizes]
            store = {"0": store["1"]}
        super().load_own_variables(store)

    def metric_names(self):
        return ("loss", "iwae", "elbo", "reconstruction", "kl", "acceptance")

    def annealed_samples(self, x, y=None, seed=None, params=None):
        """Runs the K AIS chains of Algorithm 1 (no gradient flows through them).

        `params` are `encoder.posterior_parameters(x)` if the caller has them.

        Returns:
          dict with `z` `[K, batch, d]`, `log_weights` `[K, batch]` (float64) and
          `acceptance` `[T-1]`.
        """
        y = x if y is None else y
        seed = self.next_seed() if seed is None else seed
        params = self.encoder.posterior_parameters(x) if params is None else params
        q = self.encoder.distribution(tf.nest.map_structure(tf.stop_gradient, params))
        targets = self.decoder.prepare_targets(y)

        out = ais_chain(lambda z: self.log_joint(z, targets), q, self.betas,
                        num_chains=self.samples, num_leapfrog_steps=self.leapfrog_steps,
                        step_size=tf.convert_to_tensor(self.step_sizes), seed=seed,
                        adapt_step_size=False, precondition=True)
        return {"z": tf.stop_gradient(out["samples"]),
                "log_weights": tf.stop_gradient(out["log_weights"]),
                "acceptance": out["acceptance"]}

    def _values(self, terms):
        values = self.bound_values(terms, "iwae")
        return -tf.reduce_mean(values["iwae"]), values

    def train_step(self, data):
        x, y = unpack_batch(data)
        scale = replica_loss_scale()
        with tf.GradientTape(persistent=True) as tape:
            params = self.encoder.posterior_parameters(x)  # shared by the chains and phi
            with tape.stop_recording():
                chains = self.annealed_samples(x, y, params=params)
            log_w = chains["log_weights"]
            # A chain whose weight is not finite gets weight 0 (never a NaN gradient).
            log_w = tf.where(tf.math.is_finite(log_w), log_w, tf.constant(-1e30, log_w.dtype))
            w_norm = tf.cast(tf.nn.softmax(log_w, axis=0), tf.float32)  # [K, batch]
            log_joint = self.log_joint(chains["z"], self.decoder.prepare_targets(y))
            theta_loss = -tf.reduce_mean(tf.reduce_sum(w_norm * log_joint, axis=0))
            terms = self.log_weight_terms(x, y, params=params)
            loss, values = self._values(terms)
            phi_loss = -tf.reduce_mean(values["elbo"])
            losses = {"model": theta_loss * scale, "inference": phi_loss * scale}
        self.apply_losses(tape, losses)
        del tape
        acceptance = chains["acceptance"]
        self.step_sizes.assign(tf.exp(adapt_log_step_size(
            tf.math.log(self.step_sizes), acceptance, self.target_accept_prob,
            self.step_size_adaptation_rate, 1e-4, 10.0)))
        values["acceptance"] = acceptance
        return self.update_metrics(loss, values)

    def test_step(self, data):
        x, y = unpack_batch(data)
        return self.update_metrics(*self._values(self.log_weight_terms(x, y)))

    def get_config(self):
        config = super().get_config()
        config.update(samples=self.samples, temperatures=self.temperatures,
                      leapfrog_steps=self.leapfrog_steps,
                      target_accept_prob=self.target_accept_prob,
                      initial_step_size=self.initial_step_size,
                      step_size_adaptation_rate=self.step_size_adaptation_rate)
        return config
