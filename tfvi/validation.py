"""Argument checks shared by every tfvi module: one line, naming the argument.

Each check returns the (normalised) value, so it reads as an assignment:

    self.samples = check_positive_int("samples", samples)
"""

import numpy as np

__all__ = ["check_choice", "check_non_negative", "check_objective_for_components",
           "check_positive", "check_positive_int"]

# The bounds that stratify over mixture components (Morningstar et al., SELBO/SIWAE).
STRATIFIED_OBJECTIVES = ("selbo", "siwae")


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


def check_objective_for_components(objective, components, allowed=STRATIFIED_OBJECTIVES):
    """`objective` if a `components`-component mixture posterior can train with it.

    With K > 1 only a bound that samples every component (`allowed`: SELBO, SIWAE, and
    for some models their ablations) is accepted; with K = 1 every objective is, since
    SELBO is the ELBO and SIWAE the IWAE there."""
    if components > 1 and objective not in allowed:
        raise ValueError(f"`objective={objective!r}` is not supported with a {components}-"
                         f"component mixture posterior; accepted values: "
                         f"{', '.join(allowed)} (or components=1).")
    return objective
