"""Helpers shared by several test files (each written once here).

- `parse`: sets absl's global FLAGS from a launcher command line, as `tfvi-train` /
  `tfvi-eval` would (the launcher modules must have defined their flags first).
- `run_tensorflow_only`: runs a script in a fresh Python process that imports only NumPy
  and TensorFlow, the way a deployment loads a SavedModel; the script's `report(...)`
  line comes back as a dict whose "foreign_modules" lists any tfvi / TFP module that
  was imported (a SavedModel that needs neither gives `[]`).
- `experiment_script`: imports a script of the top-level `experiments/` folder as a module.
"""

import importlib
import json
import os
import subprocess
import sys
import textwrap

from absl import flags

FLAGS = flags.FLAGS

# Prepended to every script `run_tensorflow_only` runs. `score` evaluates the signatures
# every tfvi export has on the inputs `data` (x, z) holds.
_PRELUDE = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf

    def report(**fields):
        mods = sorted(m for m in sys.modules
                      if m.split(".")[0] in ("tfvi", "tensorflow_probability"))
        print(json.dumps({"foreign_modules": mods, **fields}))

    def score(m, data, num_samples):
        sig, res = m.signatures, {}
        for k, v in sig["encode"](x=tf.constant(data["x"])).items():
            res["encode/" + k] = v.numpy()
        for k, v in sig["decode"](z=tf.constant(data["z"])).items():
            res["decode/" + k] = v.numpy()
        res["elbo/elbo"] = sig["elbo"](x=tf.constant(data["x"]))["elbo"].numpy()
        res["log_likelihood/log_likelihood"] = sig["log_likelihood"](
            x=tf.constant(data["x"]),
            num_samples=tf.constant(num_samples))["log_likelihood"].numpy()
        return res
""")


def parse(prog, *args):
    """FLAGS as `prog *args` on the command line sets them (earlier values cleared)."""
    FLAGS.unparse_flags()
    FLAGS([prog, *args])
    return FLAGS


def run_tensorflow_only(body, *argv, directory, timeout=600):
    """Runs `body` (after `_PRELUDE`) as `python load.py *argv` in `directory`.

    Asserts the process exits 0 (its stderr tail is the message otherwise) and returns
    the JSON object its last stdout line, written by `report(...)`, holds.
    """
    script = os.path.join(str(directory), "load_tensorflow_only.py")
    with open(script, "w") as f:
        f.write(_PRELUDE + textwrap.dedent(body))
    proc = subprocess.run([sys.executable, script, *map(str, argv)], capture_output=True,
                          text=True, timeout=timeout,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


EXPERIMENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "experiments")


def experiment_script(name):
    """`experiments/<name>.py` as a module (the scripts import their siblings by name)."""
    if EXPERIMENTS not in sys.path:
        sys.path.insert(0, EXPERIMENTS)
    return importlib.import_module(name)
