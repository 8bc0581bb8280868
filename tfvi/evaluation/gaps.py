"""The AIS gap table of Ding & Freedman, "Improving Importance Weighted Auto-Encoders with
Annealed Importance Sampling" (Tables 1-4), for any trained model.

    NLL(test), NLL(train)    -log p(x) by AIS (`ais_log_likelihood`, Wu et al. protocol)
    NVLB(test), NVLB(train)  -L_5000, the IWAE bound with 5000 samples
    var gap                  log p(x) - L_5000 = NVLB(test) - NLL(test)
    gen gap                  log p(x_train) - log p(x_test) = NLL(test) - NLL(train)
    active units             #{u : Cov_x E_q[z_u] > 0.01} on the test set

All values are means over examples (nats). The returned dict carries the AIS protocol
so it can go to `metrics.json` unchanged.
"""

import functools
from typing import Any, Callable

import keras
import numpy as np

from tfvi.evaluation.active_units import active_units
from tfvi.evaluation.ais import ais_log_likelihood
from tfvi.evaluation.likelihood import iwae_log_likelihood

__all__ = ["ais_gap_table", "format_ais_gap_table", "AIS_GAP_ROWS"]

AIS_GAP_ROWS = ("nll_test", "nll_train", "nvlb_test", "nvlb_train", "var_gap", "gen_gap",
                "active_units")


def ais_gap_table(model: keras.Model, x_test: np.ndarray, x_train: np.ndarray, *,
                  iwae_samples: int = 5000, max_examples: int | None = None, seed: int = 0,
                  verbose: int = 0, batch_runner: Callable | None = None,
                  iwae_batch_size: int = 100, **ais_kwargs: Any) -> dict[str, Any]:
    """Ding & Freedman's table rows for `model` (see the module docstring).

    Args:
      model: a tfvi model with encoder/decoder/prior.
      x_test, x_train: `[N, D]` arrays (binarised as the model was trained).
      iwae_samples: S of the NVLB (5000 in the paper).
      iwae_batch_size: examples per batch of the NVLB estimate.
      max_examples: evaluate at most this many examples of each split (the first
        ones); None for all.
      seed: seed of the AIS and IWAE estimates.
      batch_runner: how the batches of the AIS and IWAE estimates run (default: one
        device; `tfvi.distribute.distributed_ais_gap_table` passes
        `replica_runner(strategy)`, which gives the same values).
      **ais_kwargs: passed to `ais_log_likelihood` (`preset="quick"`,
        `num_temperatures=...`, ...).

    Returns:
      dict with the rows of `AIS_GAP_ROWS` (floats / int) and `protocol`.
    """
    x_test, x_train = np.asarray(x_test, np.float32), np.asarray(x_train, np.float32)
    if max_examples is not None:
        x_test, x_train = x_test[:max_examples], x_train[:max_examples]
    ais = functools.partial(ais_log_likelihood, model, verbose=verbose,
                            batch_runner=batch_runner, **ais_kwargs)
    iwae = functools.partial(iwae_log_likelihood, model, num_samples=iwae_samples,
                             batch_size=iwae_batch_size, batch_runner=batch_runner)
    ais_test, ais_train = ais(x_test, seed=seed), ais(x_train, seed=seed + 1)
    nvlb_test = -iwae(x_test, seed=seed).mean()
    nvlb_train = -iwae(x_train, seed=seed + 1).mean()
    nll_test = -ais_test.log_likelihood.mean()
    nll_train = -ais_train.log_likelihood.mean()
    protocol = dict(ais_test.protocol)
    protocol.update(nvlb_samples=iwae_samples, num_test=len(x_test), num_train=len(x_train),
                    active_units_threshold=1e-2)
    return {
        "nll_test": float(nll_test),
        "nll_train": float(nll_train),
        "nvlb_test": float(nvlb_test),
        "nvlb_train": float(nvlb_train),
        "var_gap": float(nvlb_test - nll_test),
        "gen_gap": float(nll_test - nll_train),
        "active_units": active_units(model, x_test, threshold=1e-2),
        "ais_mean_acceptance": ais_test.mean_acceptance,
        "protocol": protocol,
    }


def format_ais_gap_table(columns: dict[str, dict[str, Any]]) -> str:
    """A text table, rows as in Ding & Freedman, one column per `{name: ais_gap_table(...)}`."""
    names = list(columns)
    lines = [f"{'':14s}" + "".join(f"{n:>14s}" for n in names)]
    for row in AIS_GAP_ROWS:
        cells = []
        for n in names:
            v = columns[n][row]
            cells.append(f"{v:14d}" if isinstance(v, (int, np.integer)) else f"{v:14.2f}")
        lines.append(f"{row:14s}" + "".join(cells))
    return "\n".join(lines)
