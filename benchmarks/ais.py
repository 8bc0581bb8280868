"""AIS benchmarks (issue 5).

    python benchmarks/ais.py            # all parts, a few minutes on 2 cores
    python benchmarks/ais.py --quick    # smaller budgets
    python benchmarks/ais.py --parts overhead,tfp,digits,memory

Parts:
  overhead: wall time of `ais_chain` for a fixed budget (chains x transitions x
            leapfrog) on the digits-sized decoder divided by the wall time of the same
            number of fused `value_and_gradient` evaluations of log p(x, z) in one
            compiled while_loop (target <= 1.3), with and without XLA.
  tfp:      linear-Gaussian (d=5, D=30) from the prior: mean |error| of our AIS vs
            TFP's `sample_annealed_importance_chain` at the same budget.
  digits:   time of the full Wu et al. protocol (16 chains, 10,000 temperatures,
            10 leapfrog) per 1000 examples of a digits-sized model, measured on
            --digits_examples test examples and scaled linearly in N (stated in the
            output).
  memory:   AIWAE peak RSS at T=50 vs T=5 (separate subprocesses, ru_maxrss).

Prints a table and writes `benchmarks/results/ais.json`. Compile time is excluded
from wall times (each function is called once first).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

import tfvi  # noqa: E402
from tfvi.mcmc import ais_chain, annealing_schedule  # noqa: E402

tfd = tfp.distributions
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _digits_model(latent=8, hidden=(200, 200)):
    return tfvi.models.VAE(tfvi.layers.GaussianEncoder(latent, hidden=hidden),
                           tfvi.layers.BernoulliDecoder(64, hidden=hidden),
                           input_dim=64, seed=0)


def _timed(fn, *args, repeats=3):
    fn(*args)  # trace + compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(*args)
        tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def overhead(quick, repeats=5, pilots=None):
    """AIS (16 scored chains + the default pilot chains) vs the same number of fused
    `value_and_gradient` calls on 16 chains, XLA and graph, timed round-robin
    (every repeat runs all four functions in turn, so machine load hits them alike).

    Reports wall time and process CPU time (user + sys; less sensitive to other
    processes on a shared machine), min and median over repeats, and their ratios."""
    model = _digits_model()
    x = tfvi.data.load_digits()["test_x"][:32]
    y = model.decoder.prepare_targets(x)
    chains, temps, leapfrog = 16, (50 if quick else 200), 10
    pilots = tfvi.mcmc.ais.DEFAULT_PILOT_CHAINS if pilots is None else pilots

    def log_joint(z):
        return model.decoder(z).log_prob(y) + model.prior().log_prob(z)

    betas = tf.constant(annealing_schedule(temps, "linear"), tf.float32)
    steps = tf.fill([temps - 1], 0.1)
    evals = (temps - 1) * leapfrog
    fns = {}
    for jit in (True, False):
        mode = "xla" if jit else "graph"

        @tf.function(jit_compile=jit, autograph=False)
        def ais(seed):
            return ais_chain(log_joint, model.encoder(x), betas, num_chains=chains,
                             num_leapfrog_steps=leapfrog, step_size=steps, seed=seed,
                             num_pilot_chains=pilots)["log_weights"]

        @tf.function(jit_compile=jit, autograph=False)
        def fused(seed):
            z0 = model.encoder(x).sample(chains, seed=seed)

            def body(i, z, acc):
                v, g = tfp.math.value_and_gradient(log_joint, z)
                return i + 1, z + 1e-3 * g, acc + v
            return tf.while_loop(lambda i, *_: i < evals, body,
                                 (0, z0, tf.zeros([chains, 32])))[2]

        fns[(mode, "ais")], fns[(mode, "fused")] = ais, fused
    seed = tf.constant([0, 1])
    for fn in fns.values():
        fn(seed).numpy()  # trace + compile, excluded
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    load0 = os.getloadavg()
    for _ in range(repeats):
        for key, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn(seed).numpy()
            wall[key].append(time.perf_counter() - t0)
            cpu[key].append(time.process_time() - c0)
    rows = {}
    for mode in ("xla", "graph"):
        a, f = (mode, "ais"), (mode, "fused")
        rows[mode] = dict(
            ais_wall_min_s=min(wall[a]), fused_wall_min_s=min(wall[f]),
            ratio_wall_min=min(wall[a]) / min(wall[f]),
            ratio_wall_median=float(np.median(wall[a]) / np.median(wall[f])),
            ais_cpu_min_s=min(cpu[a]), fused_cpu_min_s=min(cpu[f]),
            ratio_cpu_min=min(cpu[a]) / min(cpu[f]),
            ratio_cpu_median=float(np.median(cpu[a]) / np.median(cpu[f])))
    return dict(budget=dict(chains=chains, pilot_chains=pilots, temperatures=temps,
                            leapfrog=leapfrog, batch=32, value_and_grad_evals=evals,
                            repeats=repeats),
                threads=dict(intra_op=tf.config.threading.get_intra_op_parallelism_threads(),
                             inter_op=tf.config.threading.get_inter_op_parallelism_threads()),
                load_avg_before=load0, load_avg_after=os.getloadavg(), results=rows,
                note=f"ais runs {chains} scored + {pilots} pilot chains per example; the "
                     f"fused baseline {chains} chains. Round-robin repeats.")


def tfp_comparison(quick):
    d, big_d, batch, chains, leapfrog = 5, 30, 32, 16, 10
    temps = 200 if quick else 1000
    x, p = tfvi.data.linear_gaussian(batch, latent_dim=d, data_dim=big_d, noise_scale=1.0,
                                     seed=1)
    exact = tfvi.evaluation.linear_gaussian_log_marginal(x, **p)
    w, b = p["weights"], p["bias"]
    prior = tfd.MultivariateNormalDiag(tf.zeros([batch, d]))

    def log_joint(z):
        mean = tf.einsum("cbd,de->cbe", z, w) + b
        return (tfd.Independent(tfd.Normal(mean, 1.0), 1).log_prob(x)
                + tfd.MultivariateNormalDiag(tf.zeros(d)).log_prob(z))

    ours = tfvi.mcmc.ais_log_marginal(log_joint, prior, num_temperatures=temps,
                                      num_chains=chains, num_leapfrog_steps=leapfrog,
                                      seed=0, return_diagnostics=True)
    tfp_step = float(np.mean(ours.step_size))  # favourable to TFP: our mean adapted step

    @tf.function(jit_compile=True, autograph=False)
    def tfp_ais(seed):
        def make_kernel(tlp):
            return tfp.mcmc.HamiltonianMonteCarlo(tlp, step_size=tfp_step,
                                                  num_leapfrog_steps=leapfrog)
        _, ais_w, _ = tfp.mcmc.sample_annealed_importance_chain(
            num_steps=temps - 1, proposal_log_prob_fn=prior.log_prob,
            target_log_prob_fn=log_joint, current_state=prior.sample(chains, seed=seed),
            make_kernel_fn=make_kernel, seed=seed)
        return tf.reduce_logsumexp(ais_w, 0) - np.log(chains)

    theirs = tfp_ais(tf.constant([0, 2])).numpy()
    err_ours = float(np.abs(ours.log_marginal - exact).mean())
    err_tfp = float(np.abs(theirs - exact).mean())
    return dict(temperatures=temps, chains=chains, leapfrog=leapfrog,
                tfp_step_size=tfp_step, mean_abs_err_ours=err_ours,
                mean_abs_err_tfp=err_tfp, ratio=err_ours / err_tfp)


def digits_protocol(quick, examples=32, temperatures=10_000):
    """The full Wu et al. protocol (16 chains, `temperatures`, 10 leapfrog) on the
    first `examples` digits test examples in one chunk; per 1000 examples is scaled
    linearly in N from that measurement (not in T)."""
    model = _digits_model()
    x = tfvi.data.load_digits()["test_x"][:examples]
    temps = 200 if quick else temperatures
    kwargs = dict(preset="wu", num_temperatures=temps, batch_size=examples, verbose=0)
    load0 = os.getloadavg()
    t0, c0 = time.perf_counter(), time.process_time()
    est = tfvi.evaluation.ais_log_likelihood(model, x[:examples], **kwargs)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    return dict(measured_examples=examples, temperatures=temps, chains=16, leapfrog=10,
                measured_s=elapsed, s_per_1000_examples=elapsed * 1000 / examples,
                measured_cpu_s=cpu, cpu_s_per_1000_examples=cpu * 1000 / examples,
                threads=tf.config.threading.get_intra_op_parallelism_threads(),
                load_avg_before=load0, load_avg_after=os.getloadavg(),
                note=(f"measured on {examples} examples in one chunk (compile time, a few "
                      "seconds, included), scaled linearly in N to 1000; untrained 64-200-200-8 model (cost does not depend "
                      "on the weights)"),
                mean_acceptance=est.mean_acceptance)


_MEMORY_CHILD = """
import resource, numpy as np, keras, tfvi
T = int({T})
m = tfvi.models.AIWAE(tfvi.layers.GaussianEncoder(8, hidden=(200, 200)),
                      tfvi.layers.BernoulliDecoder(64, hidden=(200, 200)),
                      samples=5, temperatures=T, leapfrog_steps=5, input_dim=64, seed=0)
m.compile(optimizer=keras.optimizers.Adam(1e-3))
x = tfvi.data.load_digits()["test_x"][:256]
m.fit(x, batch_size=128, epochs=2, verbose=0)
print("RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def memory(quick):
    out = {}
    for temps in (5, 50):
        proc = subprocess.run([sys.executable, "-c", _MEMORY_CHILD.format(T=temps)],
                              capture_output=True, text=True, timeout=1200)
        line = [l for l in proc.stdout.splitlines() if l.startswith("RSS_KB")]
        if not line:
            raise RuntimeError(f"memory child T={temps} failed:\n{proc.stderr[-2000:]}")
        out[f"T{temps}_peak_rss_mb"] = int(line[0].split()[1]) / 1024
    out["ratio"] = out["T50_peak_rss_mb"] / out["T5_peak_rss_mb"]
    return out


PARTS = {"overhead": overhead, "tfp": tfp_comparison, "digits": digits_protocol,
         "memory": memory}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {list(PARTS)}")
    parser.add_argument("--repeats", type=int, default=5,
                        help="overhead part: round-robin repeats")
    parser.add_argument("--pilots", type=int, default=None,
                        help="overhead part: pilot chains (default: the library's)")
    parser.add_argument("--threads", type=int, default=0,
                        help="intra/inter-op threads (0: TensorFlow's default); 1 makes "
                             "CPU times comparable on a loaded machine")
    parser.add_argument("--digits_examples", type=int, default=32,
                        help="digits part: test examples timed (one chunk)")
    parser.add_argument("--digits_temperatures", type=int, default=10_000,
                        help="digits part: temperatures (10,000 = Wu et al.)")
    args = parser.parse_args()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    results = {}
    for name in args.parts.split(","):
        if name not in PARTS:
            raise SystemExit(f"--parts: unknown part {name!r}; choose from {list(PARTS)}")
        t0 = time.perf_counter()
        if name == "digits":
            results[name] = digits_protocol(args.quick, args.digits_examples,
                                            args.digits_temperatures)
        elif name == "overhead":
            results[name] = overhead(args.quick, args.repeats, args.pilots)
        else:
            results[name] = PARTS[name](args.quick)
        results[name]["part_wall_s"] = time.perf_counter() - t0
        print(f"== {name}\n{json.dumps(results[name], indent=1)}", flush=True)
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, "ais.json")
    previous = json.load(open(path)) if os.path.exists(path) else {}
    previous.update(results)
    with open(path, "w") as f:
        json.dump(previous, f, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
