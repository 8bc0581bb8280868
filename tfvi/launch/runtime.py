"""How a `tfvi-train` process computes a run (not what it computes): the distribution
strategy, the Keras dtype policy of `--precision`, XLA from `--jit_compile`, and the
workdir a non-chief worker writes."""

import contextlib
import dataclasses
import os
import shutil

from tfvi.training import lock as lock_lib

__all__ = ["Runtime", "resolve_runtime", "worker_config"]


@dataclasses.dataclass(frozen=True)
class Runtime:
    """How this process computes a run (not what): the distribution strategy (None:
    one device), the Keras dtype policy and whether the train step is XLA-compiled."""

    strategy: object
    precision: str
    jit_compile: bool

    def scope(self):
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def as_dict(self):
        replicas = getattr(self.strategy, "num_replicas_in_sync", 1)
        return {"precision": self.precision, "jit_compile": self.jit_compile,
                "num_replicas": int(replicas)}


def resolve_runtime(config, strategy):
    """Sets `--precision`'s Keras policy (before any model is built) and resolves
    `--jit_compile=auto` (`tfvi.precision`); XLA stays off under a strategy. The
    two-level models (`networks.TWO_LEVEL_ARCHITECTURES`) are convolutional for XLA's
    default (off) and keep float32 under `--precision=auto` (their heads and
    p(z1|z2) have no mixed-precision policy)."""
    from tfvi import networks, precision

    two_level = config.architecture in networks.TWO_LEVEL_ARCHITECTURES
    policy = precision.set_precision(config.precision,
                                     "mlp" if two_level else config.architecture)
    jit = {"true": True, "false": False}.get(config.jit_compile)
    if jit is None:
        jit = precision.default_jit_compile("conv" if two_level else config.architecture)
    return Runtime(strategy, policy, jit and strategy is None)


@contextlib.contextmanager
def worker_config(config, strategy):
    """Multi-worker runs: every worker runs the same code (saving uses collectives),
    but only the chief writes `--workdir`; another worker writes a temporary copy
    (`tfvi.distribute.chief_or_temp_dir`, seeded with the chief's checkpoints when
    visible, so a resume starts every worker from the same epoch), deleted at the end."""
    from tfvi import distribute

    with distribute.chief_or_temp_dir(config.workdir, strategy) as base:
        if base == config.workdir:
            yield config
            return
        copy = os.path.join(base, "workdir")
        if os.path.exists(os.path.join(config.workdir, "flags.json")):
            shutil.copytree(config.workdir, copy, ignore=shutil.ignore_patterns(
                "tensorboard", "plots", "export", "metrics.json", lock_lib.LOCK_NAME))
        yield config.replace(workdir=copy)
