"""Model families for the launcher. Every module in this package is imported when
the launcher starts, so a new family (or prior, posterior, likelihood, strategy)
registers itself by adding one module here that calls `tfvi.launch.registry`'s
`register_*` functions and defines its own absl flags at import time."""

import importlib
import pkgutil


def import_all():
    # The built-in posteriors, priors, likelihoods and strategies register themselves.
    importlib.import_module("tfvi.launch.components")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{info.name}")
