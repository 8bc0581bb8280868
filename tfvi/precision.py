"""Numeric precision and XLA, chosen per architecture.

`--precision` and `--jit_compile` default to `auto`; these functions say what `auto`
means. Networks compute in the policy's dtype; every head, log-density, bound and
metric stays float32 (`tfvi.layers.heads.float32_policy`).

What `auto` chooses was measured on the 2-core development CPU (AVX512_BF16), the
ResnetVAE ELBO step through `model.fit` (batch 128, 28x28x1, latent 40;
`benchmarks/resnet_throughput.py`, docs/performance.md):

* convolutional networks (`conv_vae`, `resnet_vae`, `conv`): `mixed_bfloat16` where
  the CPU has bfloat16 instructions (1.6-1.7x less CPU time per step than float32,
  the bound within 0.1 nats of float32's after the same training), and XLA off (XLA's
  CPU convolutions cost 1.7-1.8x oneDNN's);
* dense networks (`mlp`, `dense_vae`): float32 and XLA on (XLA fuses the small
  matmuls and elementwise ops of an MLP step; bfloat16 gains nothing under XLA).
"""

import functools

import keras
import tensorflow as tf

from tfvi.validation import check_choice

__all__ = ["PRECISIONS", "architecture_of", "auto_jit_compile", "bfloat16_supported",
           "default_jit_compile", "resolve_precision", "set_precision"]

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
CONVOLUTIONAL = ("conv_vae", "resnet_vae", "conv")
# CPU flags (Linux /proc/cpuinfo) under which oneDNN runs bfloat16 natively.
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=None)
def bfloat16_supported():
    """Whether this machine computes bfloat16 natively: a CPU-only machine whose CPU
    reports AVX512_BF16 or AMX_BF16. Elsewhere (GPUs, older CPUs) bfloat16 is either
    emulated or not measured, and `auto` keeps float32."""
    if tf.config.list_physical_devices("GPU"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return any(flag in line.split() for flag in _BF16_FLAGS)
    except OSError:
        pass
    return False


def resolve_precision(precision, architecture="mlp"):
    """The Keras policy name `precision` stands for: `auto` -> `mixed_bfloat16` for
    convolutional architectures on a CPU with bfloat16 instructions, else float32."""
    check_choice("precision", precision, PRECISIONS)
    if precision != "auto":
        return precision
    if architecture in CONVOLUTIONAL and bfloat16_supported():
        return "mixed_bfloat16"
    return "float32"


def default_jit_compile(architecture="mlp"):
    """XLA for the train step under `--jit_compile=auto`: on for dense networks, off for
    convolutional ones (XLA's CPU convolutions are slower than oneDNN's here)."""
    return architecture not in CONVOLUTIONAL


def architecture_of(model):
    """`"conv"` when any layer inside `model` is a convolution, else `"mlp"`: the
    coarse architecture `default_jit_compile` needs, read from a built or unbuilt
    model whose layers exist."""
    convolutions = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
                    keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
                    keras.layers.Conv3DTranspose)
    layers = model._flatten_layers(include_self=True, recursive=True)
    return "conv" if any(isinstance(layer, convolutions) for layer in layers) else "mlp"


def auto_jit_compile(model):
    """`compile(jit_compile=None)`'s choice for `model`: off under a distribution
    strategy (XLA fails with variables on several devices), else
    `default_jit_compile(architecture_of(model))`."""
    if tf.distribute.has_strategy():
        return False
    return default_jit_compile(architecture_of(model))


def set_precision(precision, architecture="mlp"):
    """Sets Keras' global dtype policy; returns the policy name. Call it before the
    model is built: layers take the global policy when they are created."""
    policy = resolve_precision(precision, architecture)
    keras.mixed_precision.set_global_policy(policy)
    return policy
