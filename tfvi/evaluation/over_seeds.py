"""A metric summarised over repeated runs (seeds): the mean and the sample standard
deviation, the spread every tfvi table and plot reports.

    sd = sqrt(sum_i (v_i - mean)^2 / (n - 1))      (ddof = 1; 0 for a single run)

The population form (divide by n, `np.std`'s default) understates the spread of 3
seeds by sqrt(3/2) = 1.22x; tfvi never uses it.
"""

import numpy as np

__all__ = ["mean_and_sd"]


def mean_and_sd(values):
    """`(mean, sd)` of `values` (a non-empty sequence of numbers) as Python floats, sd
    the sample standard deviation (ddof=1), 0.0 for one value."""
    v = np.asarray(values, np.float64).ravel()
    if v.size == 0:
        raise ValueError("`values` is empty: nothing to summarise.")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0
