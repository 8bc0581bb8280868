"""Argument checks shared by every tfvi module: one line, naming the argument.

Each check returns the (normalised) value, so it reads as an assignment:

    self.samples = check_positive_int("samples", samples)
"""

import numpy as np

__all__ = ["STRATIFIED_OBJECTIVES", "check_choice", "check_non_negative",
           "check_objective_for_components", "check_positive", "check_positive_int"]

# Objectives that draw T samples from every mixture component (`tfvi.bounds`): the
# only ones with a gradient for the mixture weights when K > 1.
STRATIFIED_OBJECTIVES = ("selbo", "siwae", "miwae", "ciwae", "piwae", "ppd")


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


def check_objective_for_components(objective, components, allowed=STRATIFIED_OBJECTIVES,
                                   name="`objective`", components_name="components"):
    """`objective` if a `components`-component posterior can be trained with it.

    With K > 1 mixture components an ancestral sample carries no gradient for the
    mixture weights, so only the stratified objectives in `allowed` are accepted (pass
    `allowed=()` for a model that needs a unimodal posterior). `name` and
    `components_name` are how the error spells the two arguments, e.g.
    `"--objective"` and `"--components"` in a launcher.
    """
    if components > 1 and objective not in allowed:
        accepted = ", ".join(allowed) if allowed else "none"
        raise ValueError(
            f"{name}={objective!r} is not supported with a {components}-component mixture "
            f"posterior (ancestral samples from a mixture carry no gradient for its "
            f"weights); accepted values: {accepted} (or {components_name}=1).")
    return objective
