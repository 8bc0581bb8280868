"""Numeric precision and XLA, chosen per architecture.

`--precision` and `--jit_compile` default to `auto`; these functions say what `auto`
means. Networks compute in the policy's dtype; every head, log-density, bound and
metric stays float32 (`tfvi.layers.heads.float32_policy`).
"""

import keras

from tfvi.validation import check_choice

__all__ = ["PRECISIONS", "default_jit_compile", "resolve_precision", "set_precision"]

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
_CONVOLUTIONAL = ("conv_vae", "resnet_vae", "conv")


def resolve_precision(precision, architecture="mlp"):
    """The Keras policy name `precision` stands for (`auto` -> float32 for now)."""
    check_choice("precision", precision, PRECISIONS)
    return "float32" if precision == "auto" else precision


def default_jit_compile(architecture="mlp"):
    """XLA for the train step under `--jit_compile=auto`: on for dense networks, off for
    convolutional ones (XLA's CPU convolutions are slower than oneDNN's here)."""
    return architecture not in _CONVOLUTIONAL


def set_precision(precision, architecture="mlp"):
    """Sets Keras' global dtype policy; returns the policy name."""
    policy = resolve_precision(precision, architecture)
    keras.mixed_precision.set_global_policy(policy)
    return policy
