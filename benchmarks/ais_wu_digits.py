"""Wu et al.'s AIS protocol on the 297 digits test examples: chunk size and throughput.

    python benchmarks/ais_wu_digits.py [--temperatures 10000] [--chunks 33,99,297]

For every chunk size: `tfvi.evaluation.ais_log_likelihood(model, test_x,
preset="wu", batch_size=chunk)` on all 297 test examples (16 chains + the preset's
pilot chains, 10 leapfrog steps, `--temperatures` linear temperatures), against a
bare batched `value_and_gradient` of log p(x, z) on `[16, chunk, d]` run for the same
number of evaluations in one XLA `tf.while_loop` per chunk. Reported: wall and CPU
time, gradient evaluations per second and their ratio to the bare rate, counted two
ways: over the 16 scored chains only (the preset's pilot chains, which only tune the
step size, count as overhead) and over all chains the sampler evaluates (scored +
pilot: what AIS costs per gradient evaluation it performs). With `--temperatures` below 10,000
the time of the full protocol is extrapolated linearly in T (labelled in the output).
Model: an untrained 64-200-200-8 tanh VAE (the cost does not depend on the weights).
Variants are timed in turn per chunk size (AIS, bare). Compile time is excluded
(`ais_log_likelihood` keeps one compiled loop per model and settings) and reported.
Writes `benchmarks/results/ais_wu_digits.json`.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

import tfvi  # noqa: E402
from tfvi.evaluation.ais import AIS_PRESETS  # noqa: E402

import report_io  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
CHAINS, LEAPFROG, FULL_T = 16, 10, 10_000


def bare_runner(model, x, chunk, evaluations):
    @tf.function(jit_compile=True, autograph=False)
    def run(xc):
        targets = model.decoder.prepare_targets(xc)

        def log_joint(z):
            return model.log_joint(z, targets)

        def body(i, z):
            value, grad = tfp.math.value_and_gradient(log_joint, z)
            return i + 1, z + 1e-3 * grad + 1e-6 * value[..., tf.newaxis]
        z0 = tf.random.normal([CHAINS, chunk, model.latent_dim], seed=1)
        return tf.while_loop(lambda i, z: i < evaluations, body, (0, z0))[1]

    def all_chunks():
        for start in range(0, len(x), chunk):
            idx = np.arange(start, start + chunk) % len(x)
            out = run(tf.constant(x[idx]))
        out.numpy()
    return all_chunks


def timed(fn):
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--temperatures", type=int, default=FULL_T)
    parser.add_argument("--chunks", default="33,99,297")
    parser.add_argument("--out", default=os.path.join(RESULTS, "ais_wu_digits.json"))
    args = parser.parse_args()
    model = tfvi.models.VAE(tfvi.layers.GaussianEncoder(8, hidden=(200, 200)),
                            tfvi.layers.BernoulliDecoder(64, hidden=(200, 200)),
                            input_dim=64, seed=0)
    x = tfvi.data.load_digits()["test_x"]
    temps = args.temperatures
    evaluations = (temps - 1) * LEAPFROG
    load0 = os.getloadavg()
    cpu0, wall0 = time.process_time(), time.time()
    pilots = AIS_PRESETS["wu"]["num_pilot_chains"]
    rows = {}
    for chunk in (int(c) for c in args.chunks.split(",")):
        padded = -(-len(x) // chunk) * chunk

        def ais(chunk=chunk):
            tfvi.evaluation.ais_log_likelihood(model, x, preset="wu", verbose=0,
                                               num_temperatures=temps, batch_size=chunk)
        bare = bare_runner(model, x, chunk, evaluations)
        ais_small = lambda chunk=chunk: tfvi.evaluation.ais_log_likelihood(  # noqa: E731
            model, x[:chunk], preset="wu", num_temperatures=temps, batch_size=chunk,
            verbose=0)
        compile_wall, compile_cpu = timed(ais_small)  # the runner is cached per settings
        bare_one = bare_runner(model, x[:chunk], chunk, evaluations)
        bare_one()
        ais_wall, ais_cpu = timed(ais)
        bare_wall, bare_cpu = timed(bare)
        grad_evals = CHAINS * padded * evaluations
        all_evals = grad_evals * (CHAINS + pilots) / CHAINS
        rows[chunk] = dict(
            ais_wall_s=ais_wall, ais_cpu_s=ais_cpu, bare_wall_s=bare_wall,
            bare_cpu_s=bare_cpu, first_call_wall_s=compile_wall,
            first_call_cpu_s=compile_cpu, gradient_evaluations=grad_evals,
            gradient_evaluations_with_pilots=all_evals,
            ais_evals_per_s=grad_evals / ais_wall, bare_evals_per_s=grad_evals / bare_wall,
            ratio=bare_wall / ais_wall, cpu_ratio=bare_cpu / ais_cpu,
            ratio_with_pilots=all_evals / ais_wall / (grad_evals / bare_wall),
            cpu_ratio_with_pilots=all_evals / ais_cpu / (grad_evals / bare_cpu),
            full_protocol_wall_s=ais_wall * (FULL_T - 1) / (temps - 1),
            full_protocol_cpu_s=ais_cpu * (FULL_T - 1) / (temps - 1))
    report = dict(examples=len(x), temperatures=temps, chains=CHAINS, pilot_chains=pilots,
                  leapfrog=LEAPFROG, extrapolated=temps != FULL_T, rows=rows,
                  load_avg_before=load0, load_avg_after=os.getloadavg(),
                  cpu_s=time.process_time() - cpu0, wall_s=time.time() - wall0)
    note = (f" (measured at T={temps}, scaled linearly to T={FULL_T})"
            if temps != FULL_T else "")
    print(f"Wu protocol, {len(x)} digits test examples, {CHAINS} chains + {pilots} "
          f"pilot chains{note}")
    print(f"{'chunk':>6}{'AIS evals/s':>13}{'bare evals/s':>14}{'ratio':>7}"
          f"{'cpu ratio':>10}{'all-chain cpu ratio':>20}{'full wall s':>12}{'full cpu s':>11}")
    for chunk, r in rows.items():
        print(f"{chunk:>6}{r['ais_evals_per_s']:>13.3g}{r['bare_evals_per_s']:>14.3g}"
              f"{r['ratio']:>7.2f}{r['cpu_ratio']:>10.2f}{r['cpu_ratio_with_pilots']:>20.2f}"
              f"{r['full_protocol_wall_s']:>12.0f}{r['full_protocol_cpu_s']:>11.0f}")
    report_io.finish(report, args.out, load0)


if __name__ == "__main__":
    main()
