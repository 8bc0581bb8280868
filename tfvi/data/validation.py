"""Checks of the data at the `fit`/`evaluate` boundary: one error naming the array,
the first bad index and the rule.

Rules:

* non-empty: an array with 0 examples, or a `tf.data.Dataset` of known cardinality 0;
* finite: no NaN or +-inf anywhere in `x` or `y`;
* the likelihood's support (`support_of(decoder)`): Bernoulli targets in [0, 1]
  (probabilities, or binary data), logit-normal targets in [0, 1] (clipped inside),
  categorical labels integers in [0, num_classes); Gaussian and known likelihoods
  accept any finite value;
* integer or boolean arrays for a float likelihood are cast to float32 (so `fit` on
  0/1 `int` arrays works and no error mentions a `y` the caller never passed).

Arrays are checked eagerly with NumPy (the first bad index is reported as a
`(row, column)` pair); `tf.data` datasets get the same rules as in-graph asserts
(`checked_dataset`), which fail at the first bad batch with the same message prefix.
"""

import numpy as np
import tensorflow as tf

__all__ = ["DataError", "Support", "check_array", "checked_dataset", "graph_checks",
           "support_of"]


class DataError(ValueError):
    """Bad data at the fit boundary; one line naming the array, index and rule."""


class Support:
    """The set a likelihood's target lives in: `[low, high]`, optionally integers."""

    def __init__(self, low=-np.inf, high=np.inf, integer=False, description="finite"):
        self.low, self.high, self.integer = low, high, integer
        self.description = description


REALS = Support()


def support_of(decoder):
    """The target support of a tfvi decoder layer (see the module docstring)."""
    from tfvi.layers import decoders

    if isinstance(decoder, decoders.BernoulliDecoder):
        return Support(0.0, 1.0, description="in [0, 1] (Bernoulli likelihood)")
    if isinstance(decoder, decoders.LogitNormalDecoder):
        return Support(0.0, 1.0, description="in [0, 1] (logit-normal likelihood)")
    if isinstance(decoder, decoders.CategoricalDecoder):
        return Support(0, decoder.num_classes - 1, integer=True,
                       description=f"integer labels in [0, {decoder.num_classes - 1}] "
                                   "(categorical likelihood)")
    return REALS


def _first_bad(bad):
    index = np.unravel_index(int(np.argmax(bad)), bad.shape)
    return index[0] if len(index) == 1 else tuple(int(i) for i in index)


def check_array(name, value, support=REALS):
    """Returns `value` as a NumPy array (integer/bool cast to float32 unless the
    support is integer); raises `DataError` when a rule is broken."""
    array = np.asarray(value)
    if array.ndim == 0 or array.shape[0] == 0:
        raise DataError(f"`{name}` is empty (shape {array.shape}); rule: at least one "
                        "example along axis 0.")
    if array.dtype.kind in "biu":
        if not support.integer:
            array = array.astype(np.float32)
    elif array.dtype.kind != "f":
        raise DataError(f"`{name}` has dtype {array.dtype}; rule: numbers (float, int, "
                        "bool).")
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array)
        if bad.any():
            i = _first_bad(bad)
            raise DataError(f"`{name}` has a non-finite value {array[i]} at index {i}; "
                            "rule: every value finite.")
    bad = (array < support.low) | (array > support.high)
    if support.integer and array.dtype.kind == "f":
        bad |= array != np.round(array)
    if bad.any():
        i = _first_bad(bad)
        raise DataError(f"`{name}` has the value {array[i]} at index {i}; rule: values "
                        f"{support.description}.")
    return array


def graph_checks(name, t, support):
    """`t` (cast to float32 unless the support is integer) behind in-graph asserts of
    finiteness and `support`, whose messages name `name` and the rule."""
    t = tf.convert_to_tensor(t)
    if not t.dtype.is_floating and not support.integer:
        t = tf.cast(t, tf.float32)
    checks = []
    if t.dtype.is_floating:
        checks.append(tf.debugging.assert_all_finite(
            t, f"`{name}` has a non-finite value; rule: every value finite."))
    if np.isfinite(support.low):
        checks.append(tf.debugging.assert_greater_equal(
            t, tf.cast(support.low, t.dtype),
            message=f"`{name}` has a value outside the support; rule: values "
                    f"{support.description}."))
    if np.isfinite(support.high):
        checks.append(tf.debugging.assert_less_equal(
            t, tf.cast(support.high, t.dtype),
            message=f"`{name}` has a value outside the support; rule: values "
                    f"{support.description}."))
    with tf.control_dependencies(checks):
        return tf.identity(t)


def checked_dataset(dataset, target_support, has_target):
    """`dataset` (batches `x` or `(x, y)`) with in-graph checks of the same rules;
    raises `DataError` at once when its cardinality is known to be 0."""
    if int(dataset.cardinality()) == 0:
        raise DataError("`x` (a tf.data.Dataset) is empty; rule: at least one batch.")
    spec = dataset.element_spec
    if isinstance(spec, tf.TensorSpec):
        return dataset.map(lambda x: graph_checks("x", x, target_support))
    if isinstance(spec, tuple) and len(spec) == 2 and all(
            isinstance(s, tf.TensorSpec) for s in spec):
        x_support = REALS if has_target else target_support
        return dataset.map(lambda x, y: (graph_checks("x", x, x_support),
                                         graph_checks("y", y, target_support)))
    return dataset
