"""Mutation audit: does the test suite catch one-line bugs in the core math?

Copies the `tfvi` package and `tests/` to a temporary directory, plants each bug of
`MUTATIONS` (a literal text replacement that must match exactly once, so an entry that
no longer matches the code fails loudly instead of silently testing nothing), runs the
test files named for that bug against the mutated copy (`PYTHONPATH` = the copy) and
reports caught (some test failed) or missed (all passed). The unmutated copy is run
first on the same selection: a failure there makes every verdict meaningless, so the
audit stops.

    python benchmarks/mutation_audit.py                 # every mutation
    python benchmarks/mutation_audit.py --only ais_     # names starting with ais_
    python benchmarks/mutation_audit.py --jobs 2        # two pytest runs at a time

Prints a table and writes `benchmarks/results/mutation_audit.json`. Not collected by
pytest (it is not under tests/ and its name does not start with test_).

Each entry: name, file (relative to the repository), a list of `(old, new)` literal
edits (one, except where moving a line needs two), the pytest selection (files, or
`file::test` node prefixes; `-k` expression optional) and a one-line description. When
the code a mutation targets is rewritten, re-anchor its `old` text to the new code.
"""

import argparse
import concurrent.futures
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "mutation_audit.json"


def M(name, file, edits, tests, description, k=None):
    return dict(name=name, file=file, edits=edits, tests=tests, k=k,
                description=description)


EST = "tfvi/estimators.py"
AIS = "tfvi/mcmc/ais.py"
T_EST = ["tests/test_estimators.py"]

MUTATIONS = [
    # ---- the six bugs of issue 18's table
    M("score_sign_iwae_siwae", EST,
      [("    return {\"all\": tf.reduce_mean(value + score)}\n",
        "    return {\"all\": tf.reduce_mean(value - score)}\n")],
      T_EST, "score-function term's sign flipped (IWAE/SIWAE/SELBO)",
      k="score_function_is_unbiased"),
    M("piwae_targets_swapped", EST,
      [('        return {"model": tf.reduce_mean(pair["model"]),\n'
        '                "inference": tf.reduce_mean(pair["inference"])}\n',
        '        return {"model": tf.reduce_mean(pair["inference"]),\n'
        '                "inference": tf.reduce_mean(pair["model"])}\n')],
      ["tests/test_ablation_bounds.py"], "PIWAE model/inference targets swapped",
      k="piwae"),
    M("dreg_theta_selbo", EST,
      [("    model_target = tf.reduce_mean(bounds.siwae(log_w, log_alpha))\n",
        "    model_target = tf.reduce_mean(bounds.selbo(log_w, log_alpha))\n")],
      T_EST, "DReG decoder/prior target SELBO instead of SIWAE",
      k="theta_gradient or dreg_matches"),
    M("ais_adapt_on_scored_chains", AIS,
      [("                tf.reduce_mean(accept[num_chains:], axis=0) - target_accept_prob)",
        "                tf.reduce_mean(accept[:num_chains], axis=0) - target_accept_prob)")],
      ["tests/test_ais.py"], "AIS adapts its step size on the scored chains",
      k="scored_chains"),
    M("aiwae_uniform_weights", "tfvi/models/aiwae.py",
      [("        w_norm = tf.cast(tf.nn.softmax(log_w, axis=0), tf.float32)",
        "        w_norm = tf.cast(tf.nn.softmax(0.0 * log_w, axis=0), tf.float32)")],
      ["tests/test_aiwae.py"], "AIWAE with uniform chain weights instead of AIS weights",
      k="decoder_gets"),
    M("full_cov_sample_transposed", "tfvi/distributions.py",
      [("    return loc + dist.scale.matvec(eps)",
        "    return loc + dist.scale.matvec(eps, adjoint=True)")],
      ["tests/test_distributions.py"], "full-covariance sampling with L^T eps",
      k="covariance"),
    # ---- bounds.py
    M("bounds_logmeanexp_no_1_over_T", "tfvi/bounds.py",
      [("    return tf.reduce_logsumexp(log_w + log_alpha, axis=[0, 1]) - tf.math.log(num_samples)",
        "    return tf.reduce_logsumexp(log_w + log_alpha, axis=[0, 1])")],
      ["tests/test_bounds.py"], "SIWAE/IWAE without the 1/T"),
    M("bounds_beta_on_prior_only", "tfvi/bounds.py",
      [("    return log_likelihood + beta * (log_prior - log_posterior)",
        "    return log_likelihood + beta * log_prior - log_posterior")],
      ["tests/test_bounds.py"], "beta weights log r only, not log r - log q"),
    M("bounds_miwae_sum_over_groups", "tfvi/bounds.py",
      [("    return tf.reduce_mean(per_group, axis=0)\n",
        "    return tf.reduce_sum(per_group, axis=0)\n")],
      ["tests/test_ablation_bounds.py"], "M-IWAE sums instead of averaging its groups"),
    M("bounds_selbo_unweighted", "tfvi/bounds.py",
      [("    return tf.reduce_sum(tf.exp(log_alpha) * tf.reduce_mean(log_w, axis=0), axis=0)",
        "    return tf.reduce_mean(tf.reduce_mean(log_w, axis=0), axis=0)")],
      ["tests/test_bounds.py"], "SELBO ignores the mixture weights alpha_k"),
    # ---- estimators.py
    M("dreg_coeff_ignores_beta", EST,
      [("    coeff = tf.stop_gradient(v - beta * v * (1.0 - v))",
        "    coeff = tf.stop_gradient(v - v * (1.0 - v))")],
      T_EST, "DReG path coefficient v^2 for every beta", k="dreg_matches"),
    M("dreg_vampprior_uncorrected", EST,
      [("        path = path + beta * tf.reduce_sum((v - coeff) * direct_prior, axis=[0, 1])",
        "        path = path + 0.0 * tf.reduce_sum((v - coeff) * direct_prior, axis=[0, 1])")],
      T_EST, "DReG weights the VampPrior's direct phi-term by v^2 (the issue's defect)",
      k="dreg_matches"),
    M("dreg_responsibility_dropped", EST,
      [("                v * ((1.0 - beta) * log_alpha_live[tf.newaxis] + beta * log_gamma),",
        "                v * ((1.0 - beta) * log_alpha_live[tf.newaxis]),")],
      T_EST, "per-component DReG without the d log gamma_k term", k="dreg_matches"),
    M("score_selbo_no_alpha", EST,
      [("        reward = tf.stop_gradient(tf.exp(log_alpha)[tf.newaxis] * log_w / t)",
        "        reward = tf.stop_gradient(log_w / t)")],
      T_EST, "SELBO score rewards without alpha_k", k="score_function_is_unbiased"),
    # ---- mcmc/ais.py
    M("ais_weight_after_transition", AIS,
      [("        log_w = log_w + tf.cast(beta - beta_prev, tf.float64) * tf.cast(delta, tf.float64)\n",
        ""),
       ("        accept = tf.exp(tf.minimum(tf.cast(results.log_accept_ratio, dtype), 0.0))\n",
        "        log_w = log_w + tf.cast(beta - beta_prev, tf.float64) * tf.cast(delta, tf.float64)\n"
        "        accept = tf.exp(tf.minimum(tf.cast(results.log_accept_ratio, dtype), 0.0))\n")],
      ["tests/test_ais.py"], "AIS weight increment taken after the transition",
      k="unbiased or ordering"),
    M("ais_delta_not_divided_by_beta", AIS,
      [("            lambda: ((value - lq) / beta, (grad - glq) / beta))",
        "            lambda: ((value - lq), (grad - glq)))")],
      ["tests/test_ais.py"], "AIS recovers log p - log q without dividing by beta",
      k="unbiased or good_proposal"),
    M("ais_log_mean_without_1_over_C", AIS,
      [("    return log_mean_exp(log_w, axis=0), ess, tf.math.reduce_variance(log_w, axis=0)",
        "    return tf.reduce_logsumexp(log_w, axis=0), ess, tf.math.reduce_variance(log_w, axis=0)")],
      ["tests/test_ais.py"], "AIS estimate log sum w instead of log mean w",
      k="unbiased or good_proposal"),
    # ---- models/
    M("vae_kl_sign", "tfvi/models/core.py",
      [('            "kl": bounds.selbo(lq - lp, log_alpha),',
        '            "kl": bounds.selbo(lp - lq, log_alpha),')],
      ["tests/test_vae.py"], "VAE reports KL with the wrong sign"),
    M("aiwae_betas_half", "tfvi/models/aiwae.py",
      [("        self.betas = tf.constant(np.linspace(0.0, 1.0, self.temperatures), tf.float32)",
        "        self.betas = tf.constant(np.linspace(0.0, 0.5, self.temperatures), tf.float32)")],
      ["tests/test_aiwae.py"], "AIWAE anneals to p^0.5 q^0.5 instead of p", k="decoder_gets"),
    M("vae_stl_keeps_score", "tfvi/models/core.py",
      [("            q_score = self.encoder.distribution(tf.nest.map_structure(tf.stop_gradient, params))",
        "            q_score = self.encoder.distribution(params)")],
      ["tests/test_vae.py"], "STL does not stop q's parameters in log q", k="stl"),
    # ---- evaluation/
    M("iwae_ll_divides_by_S_not_S_over_K", "tfvi/evaluation/likelihood.py",
      [("        total = tf.reduce_logsumexp(tf.stack(sums), axis=0) - math.log(per_component)",
        "        total = tf.reduce_logsumexp(tf.stack(sums), axis=0) - math.log(num_samples)")],
      ["tests/test_evaluation.py"], "stratified IWAE-S normalised by S instead of S/K"),
    M("iwae_ll_ignores_alpha", "tfvi/evaluation/likelihood.py",
      [('        log_w = tf.cast(log_w, tf.float64) + tf.cast(terms["log_alpha"], tf.float64)',
        '        log_w = tf.cast(log_w, tf.float64)')],
      ["tests/test_evaluation.py"], "stratified IWAE-S without the mixture weights"),
    M("iwae_ll_chunks_same_seed", "tfvi/evaluation/likelihood.py",
      [("                tf.random.experimental.stateless_fold_in(base_seed, b), done)",
        "                tf.random.experimental.stateless_fold_in(base_seed, b), 0)")],
      ["tests/test_evaluation.py"], "every chunk of IWAE-S reuses the same samples"),
]


def apply(copy_root, mutation):
    path = copy_root / mutation["file"]
    text = path.read_text()
    for old, new in mutation["edits"]:
        count = text.count(old)
        assert count == 1, (f"mutation {mutation['name']!r}: {old!r} matches {count} times "
                            f"in {mutation['file']} (expected exactly once); re-anchor it")
        text = text.replace(old, new)
    path.write_text(text)


def run_tests(copy_root, tests, k, timeout):
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
           "-p", "no:randomly", *tests]
    if k:
        cmd += ["-k", k]
    env = dict(os.environ, PYTHONPATH=str(copy_root), TF_CPP_MIN_LOG_LEVEL="3")
    start = time.time()
    try:
        proc = subprocess.run(cmd, cwd=copy_root, env=env, capture_output=True, text=True,
                              timeout=timeout)
        code, out = proc.returncode, proc.stdout
    except subprocess.TimeoutExpired:
        code, out = -1, "timeout"
    tail = [line for line in out.strip().splitlines() if line.strip()][-1:] or [""]
    failed = [line.split(" ")[1] for line in out.splitlines() if line.startswith("FAILED")]
    return dict(returncode=code, seconds=round(time.time() - start, 1), summary=tail[0],
                failed=failed)


def make_copy(base):
    copy_root = pathlib.Path(tempfile.mkdtemp(prefix="mut_", dir=base))
    shutil.copytree(ROOT / "tfvi", copy_root / "tfvi",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tests", copy_root / "tests",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pytest.ini", "BUILD", "setup.py", "README.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, copy_root / name)
    return copy_root


def audit(mutation, base, timeout):
    copy_root = make_copy(base)
    try:
        apply(copy_root, mutation)
        result = run_tests(copy_root, mutation["tests"], mutation["k"], timeout)
    finally:
        shutil.rmtree(copy_root, ignore_errors=True)
    result["caught"] = result["returncode"] not in (0, 5) and result["summary"] != "timeout"
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run mutations whose name starts so")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the unmutated run (only when it was just checked)")
    args = parser.parse_args(argv)
    mutations = [m for m in MUTATIONS if m["name"].startswith(args.only)]
    # Anchor check first: every edit must match exactly once in the real tree.
    for m in mutations:
        text = (ROOT / m["file"]).read_text()
        for old, _ in m["edits"]:
            assert text.count(old) == 1, (
                f"mutation {m['name']!r} does not match {m['file']} exactly once; "
                "re-anchor it")
    base = pathlib.Path(tempfile.mkdtemp(prefix="mutation_audit_"))
    load = os.getloadavg()
    cpu0 = os.times()
    try:
        if not args.no_baseline:
            # One unmutated run per test file, over the union of the selections.
            by_file = {}
            for m in mutations:
                for test in m["tests"]:
                    by_file.setdefault(test, set()).add(m["k"])
            for test, ks in sorted(by_file.items()):
                k = None if None in ks else " or ".join(sorted(f"({k})" for k in ks))
                clean = run_tests(make_copy(base), [test], k, args.timeout)
                print(f"baseline {test}: {clean['summary']}", flush=True)
                if clean["returncode"] != 0:
                    sys.exit(f"the unmutated suite fails on {test} (-k {k!r}): "
                             f"{clean['failed']}; fix it before auditing")
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            futures = {m["name"]: pool.submit(audit, m, base, args.timeout)
                       for m in mutations}
            results = []
            for m in mutations:
                r = futures[m["name"]].result()
                results.append(dict(name=m["name"], file=m["file"],
                                    description=m["description"], tests=m["tests"],
                                    k=m["k"], **r))
                verdict = "CAUGHT" if r["caught"] else "MISSED"
                print(f"{verdict:7s} {m['name']:36s} {r['seconds']:7.1f}s  "
                      f"{', '.join(r['failed']) or r['summary']}", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    cpu1 = os.times()
    caught = sum(r["caught"] for r in results)
    print(f"\n{caught}/{len(results)} mutations caught")
    print(f"{'mutation':36s} {'file':28s} caught by")
    for r in results:
        by = ", ".join(r["failed"]) if r["caught"] else "MISSED"
        print(f"{r['name']:36s} {r['file']:28s} {by}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    summary = dict(caught=caught, total=len(results), results=results,
                   load_average_start=load, load_average_end=os.getloadavg(),
                   child_cpu_seconds=round((cpu1.children_user + cpu1.children_system)
                                           - (cpu0.children_user + cpu0.children_system), 1))
    if not args.only:
        RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {RESULTS}")
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
