"""Deterministic classifiers for Morningstar et al.'s single-column task (B.1): the "pyramid"
MLP (5 x 256, an estimate of the peak deterministic accuracy) and the "bottleneck"
MLP with the VIB's architecture (4 x 128 ELU, then a 2-unit hidden layer, then an
affine map to the classes). Both output class probabilities (softmax), so
`tfvi.evaluation.expected_calibration_error` applies to `predict`.
"""

import keras

__all__ = ["pyramid_mlp", "bottleneck_mlp"]


def _check(num_classes, input_dim):
    for name, value in (("num_classes", num_classes), ("input_dim", input_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")


def _mlp(input_dim, hidden, activation, num_classes, name):
    layers = [keras.Input((input_dim,))]
    layers += [keras.layers.Dense(h, activation=activation) for h in hidden]
    layers.append(keras.layers.Dense(num_classes, activation="softmax", name="probs"))
    return keras.Sequential(layers, name=name)


def pyramid_mlp(input_dim, num_classes=10, hidden=(256,) * 5, activation="elu"):
    """The "pyramid" baseline: 5 hidden layers of 256 units (B.1)."""
    _check(num_classes, input_dim)
    return _mlp(input_dim, tuple(hidden), activation, num_classes, "pyramid_mlp")


def bottleneck_mlp(input_dim, num_classes=10, hidden=(128,) * 4, bottleneck=2,
                   activation="elu"):
    """The "bottleneck" baseline: the VIB encoder's trunk, a deterministic
    `bottleneck`-unit layer (the 2-D "latent space"), an affine classifier (B.1)."""
    _check(num_classes, input_dim)
    if isinstance(bottleneck, bool) or not isinstance(bottleneck, int) or bottleneck <= 0:
        raise ValueError(f"`bottleneck` must be a positive integer; got {bottleneck!r}.")
    return _mlp(input_dim, tuple(hidden) + (bottleneck,), activation, num_classes,
                "bottleneck_mlp")
