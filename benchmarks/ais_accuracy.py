"""AIS accuracy against the exact log p(x) and against TFP at the same budget.

    python benchmarks/ais_accuracy.py              # 3 repeats, ~10 min on 2 loaded cores
    python benchmarks/ais_accuracy.py --repeats 2 --temperatures 300   # quicker

Targets: linear-Gaussian models (`tfvi.data.linear_gaussian`, noise 1, 32 examples)
whose log p(x) is exact. Proposals: "good", the exact posterior shifted by half a
standard deviation per dimension and widened 1.5x (full covariance), as a trained
q(z|x) would be; "prior", N(0, I). Budget: 16 chains x 1000 temperatures (linear
schedule) x 10 leapfrog steps for every sampler.

Samplers, run in turn within every repeat (A B C D A B C D, the machine is shared):
  tfvi:        `ais_log_marginal`'s defaults (adapted, jittered, capped trajectory).
  tfvi_before: the adaptation alone (no jitter, no cap), the sampler before issue 16.
  tfp_0.02, tfp_0.05: `tfp.mcmc.sample_annealed_importance_chain` with HMC at a fixed
               step size.

Also printed: the perfect-mixing floor, the error AIS would have if every transition
drew an exact sample from f_t (log-weight variance `sum_t (dbeta_t)^2 Var_{f_t}(delta)`,
delta = log p(x, z) - log q(z), by Monte Carlo from the Gaussian f_t; mean |error| of a
16-chain estimate ~ sqrt(2/pi) sqrt(var / 16)).

Writes `benchmarks/results/ais_accuracy.json`.
"""

import argparse
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

import tfvi  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report_io  # noqa: E402
from tfvi.mcmc import ais, annealing_schedule  # noqa: E402

tfd = tfp.distributions
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
# (data seed, latent d, data D, proposal): the easy target first.
CASES = [(1, 7, 40, "good"), (2, 5, 30, "good"), (3, 10, 60, "good"), (1, 7, 40, "prior")]
BATCH, CHAINS, LEAPFROG = 32, 16, 10


def problem(seed, d, big_d, proposal):
    x, p = tfvi.data.linear_gaussian(BATCH, latent_dim=d, data_dim=big_d, noise_scale=1.0,
                                     seed=seed)
    w, b = p["weights"].astype(np.float64), p["bias"]
    precision = np.eye(d) + w @ w.T
    cov = np.linalg.inv(precision)
    mean = (x - b) @ w.T @ cov
    if proposal == "good":
        loc = mean + 0.5 * np.sqrt(np.diag(cov))
        cov_q = 2.25 * cov
    else:
        loc, cov_q = np.zeros_like(mean), np.eye(d)
    q = tfd.MultivariateNormalTriL(
        tf.constant(loc, tf.float32),
        tf.constant(np.broadcast_to(np.linalg.cholesky(cov_q), (BATCH, d, d)), tf.float32))

    def log_joint(z):
        m = tf.einsum("cbd,de->cbe", z, p["weights"]) + p["bias"]
        return (tfd.Independent(tfd.Normal(m, 1.0), 1).log_prob(x)
                + tfd.MultivariateNormalDiag(tf.zeros(d)).log_prob(z))

    exact = tfvi.evaluation.linear_gaussian_log_marginal(x, **p)
    return dict(q=q, log_joint=log_joint, exact=exact, mean=mean, precision=precision,
                loc_q=loc, cov_q=cov_q)


def mixing_floor(pb, temperatures, examples=4, samples=4000, grid=101):
    """Expected mean |error| of a C-chain AIS estimate with exact sampling at every
    temperature (the best any transition kernel can do on this schedule)."""
    rng = np.random.default_rng(0)
    betas = np.linspace(0.0, 1.0, grid)
    lp, lq = pb["precision"], np.linalg.inv(pb["cov_q"])
    variances = []
    for i in range(examples):
        mp, mq = pb["mean"][i], pb["loc_q"][i]
        var = []
        for beta in betas:
            prec = (1 - beta) * lq + beta * lp
            cov = np.linalg.inv(prec)
            z = rng.multivariate_normal(cov @ ((1 - beta) * lq @ mq + beta * lp @ mp), cov,
                                        samples)
            delta = (-0.5 * np.einsum("ni,ij,nj->n", z - mp, lp, z - mp)
                     + 0.5 * np.einsum("ni,ij,nj->n", z - mq, lq, z - mq))
            var.append(np.var(delta))
        sched = annealing_schedule(temperatures, "linear")
        variances.append(np.sum(np.diff(sched) ** 2 * np.interp(sched[1:], betas, var)))
    return float(np.sqrt(2 / np.pi) * np.sqrt(np.mean(variances) / CHAINS))


def tfvi_sampler(pb, temperatures, before):
    betas = tf.constant(annealing_schedule(temperatures, "linear"), tf.float32)
    extra = {} if before else dict(
        step_jitter=ais.DEFAULT_STEP_JITTER,
        max_trajectory_length=ais.DEFAULT_MAX_TRAJECTORY_LENGTH)
    steps = tf.fill([temperatures - 1], 0.1)

    @tf.function(jit_compile=True, autograph=False)
    def run(seed):
        out = ais.ais_chain(pb["log_joint"], pb["q"], betas, num_chains=CHAINS,
                            num_leapfrog_steps=LEAPFROG, step_size=steps, seed=seed,
                            **extra)
        return ais.weight_diagnostics(out["log_weights"])[0]

    return run


def tfp_sampler(pb, temperatures, step):
    @tf.function(jit_compile=True, autograph=False)
    def run(seed):
        def make_kernel(tlp):
            return tfp.mcmc.HamiltonianMonteCarlo(tlp, step_size=step,
                                                  num_leapfrog_steps=LEAPFROG)
        _, log_w, _ = tfp.mcmc.sample_annealed_importance_chain(
            num_steps=temperatures - 1, proposal_log_prob_fn=pb["q"].log_prob,
            target_log_prob_fn=pb["log_joint"], make_kernel_fn=make_kernel, seed=seed,
            current_state=pb["q"].sample(CHAINS, seed=seed))
        return tf.reduce_logsumexp(tf.cast(log_w, tf.float64), 0) - math.log(CHAINS)

    return run


def run_case(case, temperatures, repeats):
    pb = problem(*case)
    samplers = {"tfvi": tfvi_sampler(pb, temperatures, before=False),
                "tfvi_before": tfvi_sampler(pb, temperatures, before=True),
                "tfp_0.02": tfp_sampler(pb, temperatures, 0.02),
                "tfp_0.05": tfp_sampler(pb, temperatures, 0.05)}
    errors = {k: [] for k in samplers}
    cpu = {k: 0.0 for k in samplers}
    for name, fn in samplers.items():
        fn(tf.constant([99, 0]))  # compile outside the timed repeats
    for rep in range(repeats):
        for name, fn in samplers.items():
            c0 = time.process_time()
            errors[name].append(fn(tf.constant([rep, 1])).numpy() - pb["exact"])
            cpu[name] += time.process_time() - c0
    out = {}
    for name, err in errors.items():
        err = np.array(err)  # [repeats, BATCH]
        per_rep = np.abs(err).mean(1)
        out[name] = dict(mean_abs_error=float(per_rep.mean()),
                         standard_error=float(per_rep.std(ddof=1) / np.sqrt(repeats))
                         if repeats > 1 else None,
                         mean_signed_error=float(err.mean()),
                         cpu_s_per_run=cpu[name] / repeats)
    best_tfp = min(out["tfp_0.02"]["mean_abs_error"], out["tfp_0.05"]["mean_abs_error"])
    return dict(case=dict(seed=case[0], latent_dim=case[1], data_dim=case[2],
                          proposal=case[3]),
                samplers=out, best_tfp=best_tfp,
                ratio_to_best_tfp=out["tfvi"]["mean_abs_error"] / best_tfp,
                perfect_mixing_floor=mixing_floor(pb, temperatures)
                if case[3] == "good" else None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--temperatures", type=int, default=1000)
    parser.add_argument("--out", default=os.path.join(RESULTS, "ais_accuracy.json"))
    args = parser.parse_args()
    load0, t0, c0 = os.getloadavg(), time.perf_counter(), time.process_time()
    cases = [run_case(c, args.temperatures, args.repeats) for c in CASES]
    report = dict(budget=dict(chains=CHAINS, temperatures=args.temperatures,
                              leapfrog=LEAPFROG, examples=BATCH, repeats=args.repeats),
                  cases=cases, wall_s=time.perf_counter() - t0,
                  cpu_s=time.process_time() - c0, load_avg_before=load0,
                  load_avg_after=os.getloadavg())
    print(f"{'case':<22}{'sampler':<13}{'mean |err|':>11}{'s.e.':>8}{'signed':>9}"
          f"{'cpu s':>7}")
    for c in cases:
        k = c["case"]
        label = f"s{k['seed']} d{k['latent_dim']} D{k['data_dim']} {k['proposal']}"
        for name, r in c["samplers"].items():
            print(f"{label:<22}{name:<13}{r['mean_abs_error']:>11.4f}"
                  f"{(r['standard_error'] or 0):>8.4f}{r['mean_signed_error']:>+9.4f}"
                  f"{r['cpu_s_per_run']:>7.1f}")
        floor = c["perfect_mixing_floor"]
        print(f"{label:<22}tfvi / best TFP = {c['ratio_to_best_tfp']:.2f}"
              + (f"; perfect-mixing floor {floor:.4f}" if floor else ""))
    report_io.finish(report, args.out, load0)


if __name__ == "__main__":
    main()
