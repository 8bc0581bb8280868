"""Argument checks shared by every tfvi module: one line, naming the argument.

Each check returns the (normalised) value, so it reads as an assignment:

    self.samples = check_positive_int("samples", samples)
"""

import numpy as np

__all__ = ["check_choice", "check_non_negative", "check_positive", "check_positive_int"]


def check_positive_int(name, value):
    """`int(value)` if it is a positive integer (Python or NumPy), else a ValueError
    naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")
    return int(value)


def check_positive(name, value):
    """`float(value)` if it is a finite number > 0, else a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
            np.isfinite(value) and value > 0):
        raise ValueError(f"`{name}` must be a positive finite number; got {value!r}.")
    return float(value)


def check_non_negative(name, value):
    """`float(value)` if it is a finite number >= 0, else a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
            np.isfinite(value) and value >= 0):
        raise ValueError(f"`{name}` must be a non-negative finite number; got {value!r}.")
    return float(value)


def check_choice(name, value, choices):
    """`value` if it is one of `choices`, else a ValueError naming `name`."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}; got {value!r}.")
    return value
