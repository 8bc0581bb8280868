"""Annealed importance sampling (AIS) with TFP's Hamiltonian Monte Carlo.

For a proposal q(z) and an unnormalised target f(z) = p(x, z), AIS (Neal 2001; seed
001, section 2.2) anneals along the geometric path

    f_t(z) = q(z)^(1 - beta_t) p(x, z)^beta_t,   0 = beta_0 < ... < beta_{T-1} = 1  (7)

and gives each chain the weight (Ding & Freedman, eq. 8)

    log w = sum_{t=1}^{T-1} (beta_t - beta_{t-1}) [log p(x, z^{t-1}) - log q(z^{t-1})],

with z^0 ~ q and z^t from one `tfp.mcmc.HamiltonianMonteCarlo` transition leaving
f_t invariant. `mean_c w_c` is an unbiased estimate of p(x); its log (taken in
float64 over the chains) is a stochastic lower bound on log p(x).

Implementation notes (measured in `benchmarks/ais.py`):

* The temperatures run inside one `tf.while_loop` (never unrolled in Python), compiled
  with XLA by default; memory does not grow with T (only two `[T-1]` scalar traces are
  kept for diagnostics).
* Every log-density evaluation is reused: with
  `V_t = log q + beta_t (log p - log q)` the value and gradient of `log p - log q` at
  the new state are recovered from HMC's own `V_t` and the cheap proposal density, so a
  transition costs `L` evaluations of `value_and_gradient(log p(x, z))`, not `L + 2`.
  Below `beta = 0.01`, where that division would amplify rounding, `log p` is evaluated
  directly.
* Step sizes: `step_size[t] * exp(m_b) * sigma_q(x_b) * u`: a base per temperature (a
  scalar or a `[T-1]` schedule, e.g. learned by AIWAE), a per-example multiplier
  `m_b` adapted between temperatures towards `target_accept_prob` from the mean
  acceptance probability of the example's chains (as Wu et al. 2016 adapt one global
  step), and optionally the proposal's standard deviation per dimension as a diagonal
  preconditioner; `u ~ U[1 - j, 1 + j]` per chain and transition, and the adapted
  trajectory `L step_size[t] exp(m_b)` capped (the defaults of `ais_chain`, hence of
  `ais_log_marginal`, AIS evaluation, BDMC and AIWAE: j = 0.5, pi/2 proposal standard
  deviations; without them the adapted sampler lost to a fixed
  step on an easy target, benchmarks/ais_accuracy.py). A proposal whose
  log-density is NaN/inf is rejected by TFP's Metropolis-Hastings step; here it
  also halves that example's step size, so a too
  large step recovers instead of stalling. A non-finite log-weight (the target is
  NaN at a chain's *current* state) is never returned silently: the eager entry point
  raises `FloatingPointError` naming the temperature and step size.
"""

import collections
import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvi.bounds import log_mean_exp
from tfvi.mcmc.step_size import adapt_log_step_size
from tfvi.seeds import as_seed
from tfvi.validation import check_positive_int

tfd = tfp.distributions

__all__ = ["ais_log_marginal", "ais_chain", "annealing_schedule", "trajectory_cap", "AISResult",
           "SCHEDULES"]

SCHEDULES = ("linear", "sigmoid")
# Below this inverse temperature log p is evaluated directly rather than recovered
# from HMC's tempered value (the recovery divides by beta).
_DIRECT_BELOW = 0.01
_MIN_STEP, _MAX_STEP = 1e-6, 1e3
# Pilot chains per example that drive the step-size adaptation (see `ais_chain`).
DEFAULT_PILOT_CHAINS = 2
# `ais_log_marginal`'s defaults for the adapted step (see `ais_chain`; measured in
# benchmarks/ais_accuracy.py): each chain's step is drawn uniformly in
# [1 - j, 1 + j] x the adapted step at every transition, and the adapted trajectory
# L x step is capped at pi/2 proposal standard deviations.
DEFAULT_STEP_JITTER = 0.5
DEFAULT_MAX_TRAJECTORY_LENGTH = math.pi / 2

AISResult = collections.namedtuple(
    "AISResult",
    [
        "log_marginal",         # [B] float64: log mean_c w_c
        "log_weights",          # [C, B] float64: per-chain log w
        "samples",              # [C, B, d]: the chains' final states z^{T-1}
        "acceptance",           # [T-1]: mean acceptance probability per temperature
        "step_size",            # [T-1]: mean step size (over examples) per temperature
        "final_step_size",      # [B]: per-example step multiplier x base at the end
        "ess",                  # [B]: effective sample size of the final weights
        "log_weight_variance",  # [B]: variance of log w over chains
        "protocol",             # dict: the settings, ready for metrics.json
    ],
)


def annealing_schedule(num_temperatures, schedule="linear", rad=4.0):
    """Inverse temperatures `[num_temperatures]` float64 from 0 to 1 inclusive.

    "linear": evenly spaced (Ding & Freedman, 5.1 and its evaluation). "sigmoid": Wu et al.
    (2016)'s `sigmoid_schedule`, sigmoid(linspace(-rad, rad)) rescaled to [0, 1],
    which spends more temperatures near both ends. An array is validated and returned.
    """
    if isinstance(schedule, str):
        if schedule not in SCHEDULES:
            raise ValueError(
                f"`schedule` must be one of {list(SCHEDULES)} or an array of inverse "
                f"temperatures; got {schedule!r}.")
        if isinstance(num_temperatures, bool) or not isinstance(
                num_temperatures, (int, np.integer)) or num_temperatures < 2:
            raise ValueError(
                f"`num_temperatures` must be an integer >= 2 (beta_0 = 0 and "
                f"beta_{{T-1}} = 1 included); got {num_temperatures!r}.")
        if schedule == "linear":
            return np.linspace(0.0, 1.0, int(num_temperatures))
        s = 1.0 / (1.0 + np.exp(-np.linspace(-rad, rad, int(num_temperatures))))
        return (s - s[0]) / (s[-1] - s[0])
    betas = np.asarray(schedule, np.float64)
    if (betas.ndim != 1 or len(betas) < 2 or betas[0] != 0.0 or betas[-1] != 1.0
            or np.any(np.diff(betas) <= 0)):
        raise ValueError(
            "`schedule` as an array must be 1-D, strictly increasing, start at 0 and "
            f"end at 1; got {betas!r}.")
    if num_temperatures is not None and num_temperatures != len(betas):
        raise ValueError(
            f"`num_temperatures`={num_temperatures} but the `schedule` array has "
            f"{len(betas)} entries.")
    return betas


def _value_and_grad(fn, z):
    return tfp.math.value_and_gradient(fn, z)


def trajectory_cap(max_trajectory_length, adapt_step_size, precondition):
    """The cap `ais_chain` applies: "auto" -> pi/2 proposal standard deviations when the
    step is both adapted and preconditioned, else None (a fixed `step_size` is used as
    given); a positive number or None as given."""
    if isinstance(max_trajectory_length, str) and max_trajectory_length == "auto":
        return (DEFAULT_MAX_TRAJECTORY_LENGTH if adapt_step_size and precondition
                else None)
    if max_trajectory_length is not None and not max_trajectory_length > 0:
        raise ValueError("`max_trajectory_length` must be positive, None or 'auto'; got "
                         f"{max_trajectory_length!r}.")
    return max_trajectory_length


def ais_chain(target_log_prob_fn, proposal, betas, *, num_chains, num_leapfrog_steps,
              step_size, seed, adapt_step_size=True, target_accept_prob=0.6,
              adaptation_rate=0.5, precondition=True, init_state=None,
              num_temperatures=None, num_pilot_chains=DEFAULT_PILOT_CHAINS,
              step_jitter=DEFAULT_STEP_JITTER, max_trajectory_length="auto"):
    """The AIS loop on tensors (traceable; call it inside `tf.function`).

    Args:
      target_log_prob_fn: `z [C, B, d] -> log p(x, z) [C, B]`.
      proposal: `tfd.Distribution`, batch `[B]`, event `[d]`: q(z) (beta = 0).
      betas: `[T]` float32 inverse temperatures (0 first, 1 last).
      num_chains: C.
      num_leapfrog_steps: L.
      step_size: `[T-1]` float32 base step size per transition.
      seed: stateless seed `[2]` int32.
      adapt_step_size: adapt the per-example multiplier between temperatures.
      target_accept_prob: acceptance the adaptation aims at.
      adaptation_rate: `m_b += rate * (mean acceptance - target)` per temperature.
      precondition: scale steps by the proposal's standard deviation per dimension.
      init_state: `[C, B, d]` start instead of samples from the proposal. Reverse
        AIS (BDMC's upper bound) passes exact posterior samples with decreasing
        `betas` (1 -> 0): the accumulated `log_weights` are then log w_rev, with
        E[w_rev] = 1 / p(x), so `-log mean w_rev` upper-bounds log p(x) on average.
      num_temperatures: scalar int tensor <= len(betas): use only the first ones
        (lets one compiled loop serve several schedules padded to one length).
      num_pilot_chains: extra chains per example, run alongside, whose acceptance
        alone drives the step-size adaptation and whose weights are discarded. A
        kernel tuned on the estimating chains' own history is no longer invariant
        for them and biased the estimate upwards (measured: +0.06 nats on average);
        tuned on independent pilot chains the estimate stays unbiased. They cost
        `num_pilot_chains / num_chains` extra work (benchmarks/ais.py, overhead).
      step_jitter: j in [0, 1): every chain's step at every transition is the
        step times a uniform draw from [1 - j, 1 + j] (Neal 2011, 5.4.2.2), so no
        direction of the target is stuck at a trajectory length that returns the
        chain to where it started. 0: no jitter.
      max_trajectory_length: cap on the adapted `L * step_size[t] * exp(m_b)`, in
        units of the preconditioner (the proposal's standard deviation), or None;
        "auto" (`trajectory_cap`): pi/2 when the step is adapted and preconditioned.
        The adaptation may not raise the trajectory above it; a `step_size[t]`
        already above it is used as given (m_b <= 0).
        Acceptance alone (0.6) drives a preconditioned step to about one proposal
        standard deviation, a trajectory of L of them: several half-periods of a
        near-Gaussian target, along which `log p - log q` decorrelates poorly
        between temperatures (measured 1.7x the perfect-mixing error on the
        linear-Gaussian benchmark; benchmarks/ais_accuracy.py).

    Returns:
      dict of tensors: `log_weights` [C, B] float64, `samples`, `acceptance` [T-1],
      `step_size` [T-1], `final_step_size` [B], `bad_index` (first transition with a
      non-finite log-weight, -1 if none) and `bad_step` (its mean step size).
    """
    betas = tf.convert_to_tensor(betas, tf.float32)
    step_size = tf.convert_to_tensor(step_size, tf.float32)
    max_trajectory_length = trajectory_cap(max_trajectory_length, adapt_step_size,
                                           precondition)
    capacity = tf.shape(betas)[0] - 1
    num_transitions = capacity if num_temperatures is None else num_temperatures - 1
    seed_init, seed_loop = tfp.random.split_seed(seed)
    pilots = num_pilot_chains if adapt_step_size else 0
    if init_state is None:
        z = proposal.sample(num_chains + pilots, seed=seed_init)
    else:
        z = tf.convert_to_tensor(init_state)
        if pilots:
            z = tf.concat([z, z[:1] + tf.zeros([pilots, 1, 1], z.dtype)], 0)
    z = tf.stop_gradient(z)
    dtype = z.dtype
    if precondition:
        try:
            scale = tf.stop_gradient(tf.cast(proposal.stddev(), dtype))  # [B, d]
        except NotImplementedError:
            scale = tf.ones_like(z[0])
    else:
        scale = tf.ones_like(z[0])
    scale = scale[tf.newaxis]  # [1, B, d]
    log_q = proposal.log_prob

    def delta_fn(z):
        return target_log_prob_fn(z) - log_q(z)

    lq, glq = _value_and_grad(log_q, z)
    delta, gdelta = _value_and_grad(delta_fn, z)
    batch = tf.shape(delta)[1]
    log_mult = tf.zeros([batch], dtype)

    def tempered(beta):
        return lambda z: log_q(z) + beta * delta_fn(z)

    def make_kernel(beta, step):
        return tfp.mcmc.HamiltonianMonteCarlo(tempered(beta), step_size=step,
                                              num_leapfrog_steps=num_leapfrog_steps)

    # One bootstrap builds the kernel-results structure carried through the loop; its
    # target values are overwritten before every transition.
    results0 = make_kernel(betas[1], step_size[0] * scale).bootstrap_results(z)

    acc_trace = tf.zeros([capacity], dtype)
    step_trace = tf.zeros([capacity], dtype)
    log_w = tf.zeros(tf.shape(delta), tf.float64)

    def body(t, z, lq, glq, delta, gdelta, log_w, log_mult, results, seed, acc_trace,
             step_trace, bad_index, bad_step):
        beta_prev, beta = betas[t - 1], betas[t]
        log_w = log_w + tf.cast(beta - beta_prev, tf.float64) * tf.cast(delta, tf.float64)
        bad_now = tf.logical_not(tf.reduce_all(tf.math.is_finite(log_w)))
        if max_trajectory_length is not None:
            # The adaptation never lengthens the trajectory past the cap (a larger
            # initial step is kept as given); clipping the multiplier itself, so it
            # does not wind up while the cap binds.
            log_mult = tf.minimum(log_mult, tf.maximum(0.0, tf.math.log(
                max_trajectory_length / num_leapfrog_steps / step_size[t - 1])))
        step = step_size[t - 1] * tf.exp(log_mult)[tf.newaxis, :, tf.newaxis] * scale
        mean_step = tf.reduce_mean(step)
        bad_index = tf.where((bad_index < 0) & bad_now, t, bad_index)
        bad_step = tf.where((bad_index == t) & bad_now, mean_step, bad_step)
        inner = results.accepted_results._replace(
            target_log_prob=lq + beta * delta,
            grads_target_log_prob=[glq + beta * gdelta])
        results = results._replace(accepted_results=inner)
        step_seed, jitter_seed, seed = tfp.random.split_seed(seed, 3)
        if step_jitter:
            step = step * tf.random.stateless_uniform(
                tf.concat([tf.shape(z)[:2], [1]], 0), jitter_seed,
                minval=1.0 - step_jitter, maxval=1.0 + step_jitter, dtype=dtype)
        z, results = make_kernel(beta, step).one_step(z, results, seed=step_seed)
        z = tf.stop_gradient(z)
        value = results.accepted_results.target_log_prob
        grad = results.accepted_results.grads_target_log_prob[0]
        lq, glq = _value_and_grad(log_q, z)
        delta, gdelta = tf.cond(
            beta < _DIRECT_BELOW,
            lambda: _value_and_grad(delta_fn, z),
            lambda: ((value - lq) / beta, (grad - glq) / beta))
        accept = tf.exp(tf.minimum(tf.cast(results.log_accept_ratio, dtype), 0.0))
        accept = tf.where(tf.math.is_nan(accept), tf.zeros_like(accept), accept)
        if adapt_step_size:
            proposed_ok = tf.reduce_all(tf.math.is_finite(
                results.proposed_results.target_log_prob[num_chains:]), axis=0)
            log_mult = tf.where(proposed_ok, log_mult, log_mult - math.log(2.0))
            log_mult = adapt_log_step_size(
                log_mult, tf.reduce_mean(accept[num_chains:], axis=0), target_accept_prob,
                adaptation_rate, _MIN_STEP, _MAX_STEP)
        index = [[t - 1]]
        acc_trace = tf.tensor_scatter_nd_update(acc_trace, index, [tf.reduce_mean(accept)])
        step_trace = tf.tensor_scatter_nd_update(step_trace, index, [mean_step])
        return (t + 1, z, lq, glq, delta, gdelta, log_w, log_mult, results, seed,
                acc_trace, step_trace, bad_index, bad_step)

    loop_vars = (tf.constant(1), z, lq, glq, delta, gdelta, log_w, log_mult, results0,
                 seed_loop, acc_trace, step_trace, tf.constant(-1), tf.zeros([], dtype))
    out = tf.while_loop(lambda t, *_: t <= num_transitions, body, loop_vars,
                        maximum_iterations=capacity)
    (_, z, _, _, _, _, log_w, log_mult, _, _, acc_trace, step_trace, bad_index,
     bad_step) = out
    return {
        "log_weights": log_w[:num_chains],
        "samples": z[:num_chains],
        # Full length (static shapes for XLA); entries past `num_temperatures - 1`
        # are zero.
        "acceptance": acc_trace,
        "step_size": step_trace,
        "final_step_size": step_size[num_transitions - 1] * tf.exp(log_mult),
        "bad_index": bad_index,
        "bad_step": bad_step,
    }


def weight_diagnostics(log_w):
    """`(log_marginal, ess, log_weight_variance)`, each `[B]` float64, from `[C, B]`
    float64 log-weights: the log-mean-exp over chains, `(sum w)^2 / sum w^2` and the
    variance of `log w` over chains."""
    log_w = tf.cast(log_w, tf.float64)
    ess = tf.exp(2.0 * tf.reduce_logsumexp(log_w, 0) - tf.reduce_logsumexp(2.0 * log_w, 0))
    return log_mean_exp(log_w, axis=0), ess, tf.math.reduce_variance(log_w, axis=0)


def raise_if_not_finite(out, betas):
    """Eager check of an `ais_chain` output; raises `FloatingPointError` with the
    temperature and the step size at which a log-weight first became non-finite."""
    bad = int(out["bad_index"])
    if bad >= 0:
        betas = np.asarray(betas)
        raise FloatingPointError(
            f"AIS produced a non-finite log-weight at temperature index {bad} "
            f"(beta={betas[bad]:.6g}, mean step size {float(out['bad_step']):.4g}): the "
            "target log-density is NaN or infinite at a chain's current state. Check "
            "`target_log_prob_fn` (and the proposal's support); a smaller "
            "`step_size` only helps if the chains reach such states through HMC moves.")


def ais_log_marginal(target_log_prob_fn, proposal, *, num_temperatures,
                     num_leapfrog_steps=10, num_chains=16, schedule="linear",
                     target_accept_prob=0.6, step_size=0.1, adapt_step_size=True,
                     adaptation_rate=0.5, precondition=True, seed=None,
                     jit_compile=True, return_diagnostics=False,
                     num_pilot_chains=DEFAULT_PILOT_CHAINS, step_jitter=DEFAULT_STEP_JITTER,
                     max_trajectory_length="auto"):
    """Per-example AIS estimate of log Z = log integral p(x, z) dz.

    Args:
      target_log_prob_fn: `z [num_chains, B, d] -> log p(x, z) [num_chains, B]` (any
        model; the batch of examples is the second axis).
      proposal: a `tfd.Distribution` with batch shape `[B]` and event `[d]`: the
        starting distribution q(z) (e.g. the encoder's q(z|x)).
      num_temperatures: T, the number of inverse temperatures including 0 and 1
        (T - 1 HMC transitions).
      num_leapfrog_steps: L per HMC transition.
      num_chains: C independent chains per example.
      schedule: "linear", "sigmoid" or an array of T inverse temperatures.
      target_accept_prob: the acceptance rate the step size adaptation aims at.
      step_size: initial (adapted) step size: a scalar or a `[T-1]` schedule. It is
        multiplied by the proposal's standard deviation when `precondition`.
      adapt_step_size: adapt a per-example multiplier between temperatures.
      adaptation_rate: gain of that adaptation (on the log step size).
      precondition: scale the step per dimension by the proposal's stddev.
      seed: int (repeatable) or None.
      jit_compile: compile the loop with XLA (about 3-4x faster on CPU).
      return_diagnostics: return an `AISResult` instead of the `[B]` estimate.
      num_pilot_chains: extra chains per example whose acceptance alone drives the
        adaptation (their weights are discarded; see `ais_chain`). Ignored when
        `adapt_step_size` is False.
      step_jitter: per-chain, per-transition step multiplier drawn from
        `[1 - step_jitter, 1 + step_jitter]` (0 disables it).
      max_trajectory_length: cap on the adapted trajectory `L x step` in proposal
        standard deviations; "auto" is pi/2 when both `adapt_step_size` and
        `precondition` are on (a quarter period of a Gaussian as wide as the
        proposal), otherwise None (no cap: a fixed `step_size` is used as given).

    Returns:
      `[B]` float64 numpy array of log Z estimates (log-mean-exp of the C chains'
      weights, in float64), or an `AISResult` with acceptance per temperature, ESS,
      log-weight variance, final samples and the protocol.

    Raises:
      FloatingPointError: a log-weight became NaN/inf (names temperature and step).
    """
    num_chains = check_positive_int("num_chains", num_chains)
    num_leapfrog_steps = check_positive_int("num_leapfrog_steps", num_leapfrog_steps)
    if not 0.0 < target_accept_prob < 1.0:
        raise ValueError(
            f"`target_accept_prob` must be in (0, 1); got {target_accept_prob!r}.")
    if not isinstance(proposal, tfd.Distribution):
        raise ValueError(
            f"`proposal` must be a tfd.Distribution with batch [B] and event [d]; got "
            f"{type(proposal).__name__}.")
    if proposal.event_shape.rank != 1 or proposal.batch_shape.rank != 1:
        raise ValueError(
            "`proposal` must have batch shape [B] and event shape [d]; got batch "
            f"{proposal.batch_shape} and event {proposal.event_shape}.")
    betas = annealing_schedule(num_temperatures, schedule)
    steps = np.broadcast_to(np.asarray(step_size, np.float32), [len(betas) - 1])
    if np.any(~(steps > 0)):
        raise ValueError(f"`step_size` must be positive; got {step_size!r}.")
    seed_t = as_seed(seed)
    if adapt_step_size:
        num_pilot_chains = check_positive_int("num_pilot_chains", num_pilot_chains)
    if not 0.0 <= step_jitter < 1.0:
        raise ValueError(f"`step_jitter` must be in [0, 1); got {step_jitter!r}.")
    max_trajectory_length = trajectory_cap(max_trajectory_length, adapt_step_size,
                                           precondition)

    def run(betas_t, steps_t, seed_t):
        return ais_chain(target_log_prob_fn, proposal, betas_t, num_chains=num_chains,
                         num_leapfrog_steps=num_leapfrog_steps, step_size=steps_t,
                         seed=seed_t, adapt_step_size=adapt_step_size,
                         target_accept_prob=target_accept_prob,
                         adaptation_rate=adaptation_rate, precondition=precondition,
                         num_pilot_chains=num_pilot_chains, step_jitter=step_jitter,
                         max_trajectory_length=max_trajectory_length)

    if tf.executing_eagerly():
        run = tf.function(run, jit_compile=jit_compile, autograph=False)
    out = run(tf.constant(betas, tf.float32), tf.constant(steps), seed_t)
    if not tf.executing_eagerly():
        # Inside a caller's graph: no eager check possible; diagnostics carry it.
        log_z, ess, var = weight_diagnostics(out["log_weights"])
        return log_z if not return_diagnostics else AISResult(
            log_z, out["log_weights"], out["samples"], out["acceptance"],
            out["step_size"], out["final_step_size"], ess, var, None)
    raise_if_not_finite(out, betas)
    log_z, ess, var = weight_diagnostics(out["log_weights"])
    if not return_diagnostics:
        return log_z.numpy()
    protocol = {
        "method": "ais",
        "num_chains": num_chains,
        "num_temperatures": len(betas),
        "schedule": schedule if isinstance(schedule, str) else "custom",
        "num_leapfrog_steps": num_leapfrog_steps,
        "target_accept_prob": float(target_accept_prob),
        "adapt_step_size": bool(adapt_step_size),
        "num_pilot_chains": int(num_pilot_chains) if adapt_step_size else 0,
        "step_jitter": float(step_jitter),
        "max_trajectory_length": None if max_trajectory_length is None
        else float(max_trajectory_length),
        "seed": None if seed is None else int(seed) if np.ndim(seed) == 0 else list(seed),
    }
    return AISResult(
        log_marginal=log_z.numpy(), log_weights=out["log_weights"].numpy(),
        samples=out["samples"].numpy(), acceptance=out["acceptance"].numpy(),
        step_size=out["step_size"].numpy(), final_step_size=out["final_step_size"].numpy(),
        ess=ess.numpy(), log_weight_variance=var.numpy(), protocol=protocol)
