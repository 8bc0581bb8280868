"""What every distribution head shares: event shapes and networks.

An encoder or decoder is a *network* (any Keras layer or model) under a *head* that
turns the network's features into a `tfd.Distribution`. This module holds the pieces
both kinds of head use:

* `event_shape_of(value)`: an int or a tuple such as `(28, 28, 1)` as a tuple;
* `get_network(network)`: a Keras layer/model (or its serialised config) or None;
* `feature_shape(network, input_shape)`: builds the network and returns the shape of
  its output for `input_shape` (batch axis included, `None`);
* `float32_policy(kwargs)`: heads and priors compute in float32 under a
  mixed-precision global policy (the networks keep the low precision);
* `flatten_leading(x, event_rank)` / `restore_leading(y, leading, event_rank)`: fold
  the leading sample axes `[T, K, batch]` of `x` into one so a network sees
  `[n, ...]`, and unfold them afterwards.
"""

import math

import keras
import tensorflow as tf

from tfvi.validation import check_positive_int

__all__ = ["event_shape_of", "feature_shape", "flatten_leading", "float32_policy",
           "get_network", "num_elements", "restore_leading"]


def event_shape_of(value, name="event_shape"):
    """An int `D` -> `(D,)`; a sequence of positive ints -> that tuple."""
    if isinstance(value, (list, tuple)):
        shape = tuple(value)
        if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0
                            for s in shape):
            raise ValueError(
                f"`{name}` must be a positive integer or a tuple of them; got {value!r}.")
        return shape
    return (check_positive_int(name, value),)


def num_elements(shape):
    """The product of `shape` (1 for `()`)."""
    return int(math.prod(shape))


def get_network(network, name):
    """`network` (a Keras layer or model, or its serialised config) or None."""
    if network is None:
        return None
    if isinstance(network, dict):
        network = keras.saving.deserialize_keras_object(network)
    if not isinstance(network, keras.layers.Layer):
        raise ValueError(
            f"`{name}` must be a Keras layer or model (or None for the default MLP); "
            f"got {type(network).__name__}.")
    return network


def feature_shape(network, input_shape):
    """Builds `network` on `[None, *input_shape[1:]]` and returns its output shape."""
    spec = network(keras.KerasTensor((None,) + tuple(input_shape)[1:]))
    if isinstance(spec, (list, tuple, dict)):
        raise ValueError(
            f"network {network.name!r} must return one tensor of features; got "
            f"{type(spec).__name__}.")
    return tuple(spec.shape)


def flatten_leading(x, event_rank):
    """`[*leading, *event]` -> (`[prod(leading), *event]`, the leading shape tensor)."""
    shape = tf.shape(x)
    split = tf.rank(x) - event_rank
    leading = shape[:split]
    flat = tf.reshape(x, tf.concat([[-1], shape[split:]], 0))
    if event_rank and x.shape.rank is not None:
        flat = tf.ensure_shape(flat, [None] + x.shape[x.shape.rank - event_rank:].as_list())
    return flat, leading


def restore_leading(y, leading, event_rank):
    """`[n, *event]` -> `[*leading, *event]` (inverse of `flatten_leading`)."""
    event = tf.shape(y)[1:] if event_rank else tf.constant([], tf.int32)
    out = tf.reshape(y, tf.concat([leading, event], 0))
    return out


def float32_policy(kwargs):
    """`kwargs` with `dtype="float32"` added when a mixed-precision global policy
    (`mixed_bfloat16`, `mixed_float16`) is set and no dtype was given: distribution
    heads and priors then compute every log-density in float32, while networks built
    under the global policy compute in the low precision."""
    if kwargs.get("dtype") is None and keras.config.dtype_policy().name.startswith("mixed"):
        kwargs = dict(kwargs, dtype="float32")
    return kwargs
