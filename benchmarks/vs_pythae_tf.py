"""The tfvi side of `benchmarks/vs_pythae.py`: models, data and timed blocks.

Runs in its own process (`python benchmarks/vs_pythae.py --worker tf`). Variants:

* `tfvi_fit`: `model.compile(Adam(1e-3))` and `model.fit(x, batch_size, epochs)` with
  tfvi's defaults (steps per execution, the array input pipeline, XLA and precision
  chosen by tfvi; for the ResnetVAE `tfvi.precision.set_precision("auto",
  "resnet_vae")` before building, as `tfvi-train --precision=auto` does);
* `tfvi_bare`: `model.train_step` in one `tf.function` (XLA, tfvi's choice for these
  MLPs) called from Python on pre-batched tensors; `tfvi_bare_graph` the same without
  XLA;
* `gemm_xla`, `gemm_graph` (the 784-d IWAE): the FLOP ceiling, every matrix product
  of one training step (forward, and the two products per layer of the backward pass)
  at the model's shapes and nothing else, under XLA and in graph mode.
"""

import time

import numpy as np


def make_data(spec):
    """The training array of a workload: binarised (seed 0) digits or mnist5k."""
    import tfvi
    from tfvi.data.mnist5k import load_mnist5k

    if spec["data"] == "digits":
        probs = tfvi.data.load_digits()["train_probs"]
    else:
        probs = load_mnist5k()["train_probs"][:spec["examples"]]
        if spec["kind"] == "mlp":
            probs = probs.reshape(len(probs), -1)
    rng = np.random.default_rng(0)
    return (rng.random(probs.shape) < probs).astype(np.float32)


def gemm_shapes(spec):
    """`(M, K, N)` of every forward matrix product of one step of the MLP VAE."""
    b, k, h = spec["batch_size"], spec["samples"], spec["hidden"]
    enc = [spec["input_dim"], *h, 2 * spec["latent_dim"]]
    dec = [spec["latent_dim"], *h, spec["input_dim"]]
    return ([(b, i, o) for i, o in zip(enc, enc[1:])]
            + [(k * b, i, o) for i, o in zip(dec, dec[1:])])


def step_flops(spec):
    """FLOPs of one training step's matrix products: 2 M K N per product, three
    products per layer (forward, input gradient, weight gradient)."""
    return sum(3 * 2 * m * k_ * n for m, k_, n in gemm_shapes(spec))


class TfWorkload:
    """tfvi's variants of one workload, each its own model from the same seed."""

    def __init__(self, spec, x):
        import keras
        import tensorflow as tf

        import tfvi
        from tfvi import networks

        self.tf, self.spec, self.x = tf, spec, x
        self.batch = spec["batch_size"]
        self.info_ = {"tensorflow": tf.__version__, "keras": keras.__version__}

        def build():
            keras.utils.set_random_seed(0)
            if spec["kind"] == "resnet":
                enc = tfvi.layers.GaussianEncoder(spec["latent_dim"],
                                                  network=networks.resnet_vae_encoder())
                dec = tfvi.layers.BernoulliDecoder((28, 28, 1),
                                                   network=networks.resnet_vae_decoder())
                return tfvi.models.VAE(enc, dec, objective="elbo", input_dim=(28, 28, 1),
                                       seed=0)
            enc = tfvi.layers.GaussianEncoder(spec["latent_dim"], hidden=spec["hidden"],
                                              activation="tanh")
            dec = tfvi.layers.BernoulliDecoder(spec["input_dim"], hidden=spec["hidden"],
                                               activation="tanh")
            return tfvi.models.VAE(enc, dec, objective=spec["objective"],
                                   samples=spec["samples"], input_dim=spec["input_dim"],
                                   seed=0)

        self.runners = {}
        if spec["kind"] == "resnet":
            policy = tfvi.precision.set_precision("auto", "resnet_vae")
            try:
                fit_model = build()
            finally:
                keras.mixed_precision.set_global_policy("float32")
        else:
            policy = "float32"
            fit_model = build()
        fit_model.compile(optimizer=keras.optimizers.Adam(1e-3))  # tfvi's defaults
        self.info_.update(precision=policy,
                          jit_compile=tfvi.precision.auto_jit_compile(fit_model))

        def fit(epochs, model=fit_model):
            model.fit(x, batch_size=self.batch, epochs=epochs, verbose=0)
            self.info_["steps_per_execution"] = int(model.steps_per_execution)
        self.runners["tfvi_fit"] = fit

        if spec["kind"] == "mlp":
            batches = [tf.constant(x[i:i + self.batch]) for i in range(0, len(x), self.batch)]
            for name, jit in (("tfvi_bare", True), ("tfvi_bare_graph", False)):
                if name not in spec["tf_variants"]:
                    continue
                model = build()
                model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit)
                step = tf.function(model.train_step, jit_compile=jit)

                def bare(epochs, step=step):
                    for _ in range(epochs):
                        for b in batches:
                            out = step(b)
                    float(out["loss"])
                self.runners[name] = bare
        if "gemm_xla" in spec["tf_variants"]:
            self.flops = step_flops(spec)
            self.info_.update(step_flops=self.flops, gemm_shapes=gemm_shapes(spec))
            for name, jit in (("gemm_xla", True), ("gemm_graph", False)):
                self.runners[name] = self._gemm_runner(jit)

    def _gemm_runner(self, jit):
        tf = self.tf
        rng = np.random.default_rng(1)
        operands = [tuple(tf.constant(rng.normal(size=s).astype(np.float32) * 0.05)
                          for s in ((m, k), (k, n), (m, n)))
                    for m, k, n in gemm_shapes(self.spec)]

        @tf.function(jit_compile=jit, autograph=False)
        def products(operands):
            out = []
            for x, w, dy in operands:
                out += [tf.matmul(x, w), tf.matmul(dy, w, transpose_b=True),
                        tf.matmul(x, dy, transpose_a=True)]
            return out

        steps = max(1, len(self.x) // self.batch)

        def run(epochs):
            for _ in range(epochs * steps):
                out = products(operands)
            out[0].numpy()
        return run

    def variants(self):
        return list(self.runners)

    def run(self, variant, epochs):
        """One timed block: (examples, wall s, process CPU s)."""
        c0, t0 = time.process_time(), time.perf_counter()
        self.runners[variant](epochs)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        steps = -(-len(self.x) // self.batch)
        examples = (steps * self.batch if variant.startswith("gemm") else len(self.x))
        return examples * epochs, wall, cpu

    def info(self):
        return self.info_
