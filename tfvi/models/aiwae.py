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

from tfvi.layers.heads import event_shape_of
from tfvi.mcmc.ais import ais_chain
from tfvi.mcmc.step_size import adapt_log_step_size
from tfvi.models.vae import VAE, unpack_batch
from tfvi.seeds import replica_seed
from tfvi.validation import check_positive_int

__all__ = ["AIWAE"]


@keras.saving.register_keras_serializable(package="tfvi")
class AIWAE(VAE):
    """Annealed importance weighted auto-encoder (Ding & Freedman; Ding & Freedman).

    Args:
      encoder, decoder, prior: as for `tfvi.models.VAE`.
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
        kwargs.pop("objective", None)
        kwargs.pop("beta", None)
        kwargs.pop("stl", None)
        if kwargs.pop("qz_regularizer", 0.0):
            raise ValueError("AIWAE does not support `qz_regularizer` (its theta update is "
                             "the AIS-weighted score, not a differentiated loss).")
        if getattr(encoder, "num_components", 1) > 1:
            raise ValueError(
                "AIWAE needs a unimodal encoder (`num_components == 1`); its phi update is "
                "the reparameterised ELBO of a single Gaussian q(z|x).")
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
        super().__init__(encoder, decoder, prior, objective="iwae", samples=samples,
                         input_dim=None, seed=seed, **kwargs)
        self.step_sizes = keras.Variable(
            np.full([self.temperatures - 1], self.initial_step_size, np.float32),
            trainable=False, name="step_sizes", aggregation="mean")
        self.betas = tf.constant(np.linspace(0.0, 1.0, self.temperatures), tf.float32)
        self._trackers["acceptance"] = keras.metrics.Mean(name="acceptance")
        if input_dim is not None:
            self.build((None,) + event_shape_of(input_dim, "input_dim"))

    def _generative_variables(self):
        encoder_ids = {id(v) for v in self.encoder.trainable_variables}
        return [v for v in self.trainable_variables if id(v) not in encoder_ids]

    def annealed_samples(self, x, y=None, seed=None):
        """Runs the K AIS chains of Algorithm 1 (no gradient flows through them).

        Returns:
          dict with `z` `[K, batch, d]`, `log_weights` `[K, batch]` (float64) and
          `acceptance` `[T-1]`.
        """
        y = x if y is None else y
        if seed is None:
            seed = replica_seed(self.seed_generator.next())
        params = tf.nest.map_structure(tf.stop_gradient, self.encoder.posterior_parameters(x))
        q = self.encoder.distribution(params)
        targets = self.decoder.prepare_targets(y)

        out = ais_chain(lambda z: self.log_joint(z, targets), q, self.betas, num_chains=self.samples,
                        num_leapfrog_steps=self.leapfrog_steps,
                        step_size=tf.convert_to_tensor(self.step_sizes), seed=seed,
                        adapt_step_size=False, precondition=True)
        return {"z": tf.stop_gradient(out["samples"]),
                "log_weights": tf.stop_gradient(out["log_weights"]),
                "acceptance": out["acceptance"]}

    def train_step(self, data):
        x, y = unpack_batch(data)
        num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
        chains = self.annealed_samples(x, y)
        log_w = chains["log_weights"]
        # A chain whose weight is not finite gets weight 0 (never a NaN gradient).
        log_w = tf.where(tf.math.is_finite(log_w), log_w, tf.constant(-1e30, log_w.dtype))
        w_norm = tf.cast(tf.nn.softmax(log_w, axis=0), tf.float32)  # [K, batch]
        generative = self._generative_variables()
        with tf.GradientTape(persistent=True) as tape:
            targets = self.decoder.prepare_targets(y)
            log_joint = self.log_joint(chains["z"], targets)  # [K, batch]
            theta_loss = -tf.reduce_mean(tf.reduce_sum(w_norm * log_joint, axis=0))
            terms = self.log_weight_terms(x, y)
            values = self.bound_values(terms)
            phi_loss = -tf.reduce_mean(values["elbo"])
            scale = 1.0 / tf.cast(num_replicas, theta_loss.dtype)
            theta_loss_scaled, phi_loss_scaled = theta_loss * scale, phi_loss * scale
        theta_grads = tape.gradient(theta_loss_scaled, generative)
        phi_grads = tape.gradient(phi_loss_scaled, self.encoder.trainable_variables)
        del tape
        by_id = {id(v): g for v, g in zip(generative, theta_grads)}
        by_id.update({id(v): g for v, g in zip(self.encoder.trainable_variables, phi_grads)})
        # Keras' order, so the optimizer state matches a reloaded model's.
        variables = self.trainable_variables
        self.optimizer.apply([by_id[id(v)] for v in variables], variables)
        acceptance = chains["acceptance"]
        self.step_sizes.assign(tf.exp(adapt_log_step_size(
            tf.math.log(self.step_sizes), acceptance, self.target_accept_prob,
            self.step_size_adaptation_rate, 1e-4, 10.0)))
        self._trackers["acceptance"].update_state(tf.reduce_mean(acceptance))
        logs = self._update_metrics(-tf.reduce_mean(values["iwae"]), values)
        logs["acceptance"] = self._trackers["acceptance"].result()
        return logs

    def test_step(self, data):
        x, y = unpack_batch(data)
        values = self.bound_values(self.log_weight_terms(x, y))
        logs = self._update_metrics(-tf.reduce_mean(values["iwae"]), values)
        logs.pop("acceptance", None)
        return logs

    def get_config(self):
        config = super().get_config()
        for key in ("objective", "beta", "stl", "qz_regularizer"):
            config.pop(key, None)
        config.update(temperatures=self.temperatures, leapfrog_steps=self.leapfrog_steps,
                      target_accept_prob=self.target_accept_prob,
                      initial_step_size=self.initial_step_size,
                      step_size_adaptation_rate=self.step_size_adaptation_rate)
        return config
